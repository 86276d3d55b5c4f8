# Boot: everything lives in app.main.
from app import main

main.run()
