"""The sample world the gateway tests set up (tests/gateway/conftest.py, fixture `world`): its
seller, its driver's PIN and the API token of the test app."""

TOKEN = "test-token"
DRIVER_PIN = "4321"
SELLER = ("1000123", "深圳小商店")  # (seller id, shop name)
