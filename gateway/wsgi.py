"""The WSGI application for a production server: `gunicorn gateway.wsgi:app`.

bagscan-gateway starts gunicorn this way when BAGSCAN_HTTP_WORKERS is set and runs the one
ingest worker of the instance itself; the HTTP workers only serve requests.
"""

import socket

from gateway import create_app
from gateway.ingest import publisher

app = create_app()
if app.config["MQTT_URL"]:
    instance = app.config.get("INSTANCE") or socket.gethostname()
    app.extensions["bagscan.publisher"] = publisher.for_worker(app.config["MQTT_URL"], instance)
