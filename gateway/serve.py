"""`bagscan-gateway`: HTTP, the MQTT ingest worker and (without BAGSCAN_MQTT_URL) the embedded broker.

One process per instance runs the ingest worker. HTTP is served in that process by a threaded
server (BAGSCAN_HTTP_WORKERS unset or 0: one box), or by gunicorn with that many worker
processes, started as a child so the ingest never runs in a forked worker.
"""

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading

from werkzeug.serving import make_server

from gateway import acl, create_app, db, devices, logs
from gateway.broker import EmbeddedBroker
from gateway.ingest import Ingest

log = logging.getLogger("bagscan")


def main() -> None:
    logs.setup()
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
        app.config["DEVICE_MQTT_PORT"] = port

    instance = app.config.get("INSTANCE") or socket.gethostname()
    ingest = Ingest(mqtt_url, f"bagscan-gw-{instance}", app.config.get("MQTT_SHARE", ""))
    app.extensions["bagscan.publisher"] = ingest
    ingest.start()

    stopping = threading.Event()
    workers = int(app.config.get("HTTP_WORKERS") or 0)
    try:
        if workers > 0:
            _serve_gunicorn(app, workers, mqtt_url, stopping)
        else:
            _serve_threaded(app, stopping)
    finally:
        ingest.stop()
        if broker is not None:
            broker.stop()
        log.info("stopped")


def _serve_threaded(app, stopping: threading.Event) -> None:
    server = make_server("0.0.0.0", int(app.config["HTTP_PORT"]), app, threaded=True)
    log.info("HTTP on port %s", app.config["HTTP_PORT"])

    def shutdown(_signum, _frame) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.serve_forever()


def _serve_gunicorn(app, workers: int, mqtt_url: str, stopping: threading.Event) -> None:
    # Workers publish device configs through the broker with the instance's credentials.
    env = dict(
        os.environ,
        BAGSCAN_MQTT_URL=mqtt_url,
        BAGSCAN_DEVICE_MQTT_PORT=str(app.config["DEVICE_MQTT_PORT"]),
    )
    cmd = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(workers),
        # Threads per worker: the dashboard's live stream holds one while it is open.
        "--worker-class", "gthread", "--threads", str(app.config.get("HTTP_THREADS") or 8),
        "--bind", f"0.0.0.0:{app.config['HTTP_PORT']}",
        "--graceful-timeout", "10",
        "--access-logfile", "-",
        "gateway.wsgi:app",
    ]  # fmt: skip
    child = subprocess.Popen(cmd, env=env)
    log.info("HTTP on port %s by gunicorn, %d workers", app.config["HTTP_PORT"], workers)

    def shutdown(_signum, _frame) -> None:
        stopping.set()
        if child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    while child.poll() is None:
        try:
            child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            continue
    if not stopping.is_set():
        log.error("gunicorn exited with %s", child.returncode)
