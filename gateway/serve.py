"""`bagscan-gateway`: HTTP, the MQTT ingest worker and (without BAGSCAN_MQTT_URL) the embedded broker."""

import logging
import os
import secrets
import signal
import socket
import threading

from werkzeug.serving import make_server

from gateway import acl, create_app, db, devices
from gateway.broker import EmbeddedBroker
from gateway.ingest import Ingest

log = logging.getLogger("bagscan")


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("BAGSCAN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    app = create_app()
    db.upgrade(app.config["DATABASE_URL"])

    broker = None
    mqtt_url = app.config["MQTT_URL"]
    if not mqtt_url:
        port = int(app.config["MQTT_PORT"])
        service_password = secrets.token_urlsafe(24)

        def check(username: str, password: str) -> bool:
            if username == acl.GATEWAY_USER:
                return secrets.compare_digest(password, service_password)
            with db.sessions(app)() as session:
                return devices.check_login(session, username, password)

        broker = EmbeddedBroker(port, check)
        broker.start()
        mqtt_url = f"mqtt://{acl.GATEWAY_USER}:{service_password}@127.0.0.1:{port}"
        app.config.setdefault("DEVICE_MQTT_PORT", port)
        app.config["DEVICE_MQTT_PORT"] = port

    instance = app.config.get("INSTANCE") or socket.gethostname()
    ingest = Ingest(app, mqtt_url, f"bagscan-gw-{instance}", app.config.get("MQTT_SHARE", ""))
    app.extensions["bagscan.ingest"] = ingest
    ingest.start()

    server = make_server("0.0.0.0", int(app.config["HTTP_PORT"]), app, threaded=True)
    log.info("HTTP on port %s", app.config["HTTP_PORT"])
    stopping = threading.Event()

    def shutdown(_signum, _frame) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        server.serve_forever()
    finally:
        ingest.stop()
        if broker is not None:
            broker.stop()
        log.info("stopped")
