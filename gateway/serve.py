"""`bagscan-gateway`: HTTP, the MQTT ingest worker and (without BAGSCAN_MQTT_URL) the embedded broker.

One process per instance runs the ingest worker. HTTP is served in that process by a threaded
server (BAGSCAN_HTTP_WORKERS unset or 0: one box), or by gunicorn with that many worker
processes, started as a child so the ingest never runs in a forked worker.

A setting or a part that keeps it from starting (a bad database URL, PostgreSQL down, a port
taken, ...) ends it with one line on stderr saying what and how to fix it, and exit code 2.
While it runs, a watch logs every HEALTH_LOG_SECONDS what does not work (gateway/health.py).
"""

import os
import tempfile
from pathlib import Path

# prometheus_client chooses its multiprocess mode when it is first imported: the variable is
# set before anything imports it, so that this process, the ingest's store process and
# gunicorn's workers all count into one folder (gateway/metrics.py). A folder given there is
# emptied first: the counts start with this run.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bagscan-metrics-")
else:
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    for _old in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        _old.unlink()

import errno
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from amqtt.errors import BrokerError
from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from werkzeug.serving import make_server

from gateway import create_app, db, logs
from gateway import health as gateway_health
from gateway.auto_close import AutoClose
from gateway.ingest import acl, config_feed, firmware_feed, health, parcel_lookup, partition
from gateway.ingest.broker import EmbeddedBroker
from gateway.ingest.subscriber import Ingest
from gateway.models import Device
from gateway.services import devices
from protocol import wire

log = logging.getLogger("bagscan")

EXIT_CANNOT_START = 2
EMBEDDED_BROKER_HOST = "127.0.0.1"
WATCH_EVERY = 2.0  # seconds between the health watch's looks


class CannotStart(Exception):
    """What keeps bagscan-gateway from starting and how to fix it, as one line."""


def main() -> None:
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        _run()
    except CannotStart as err:
        print(f"bagscan-gateway: {err}", file=sys.stderr)
        sys.exit(EXIT_CANNOT_START)
    finally:
        if _OWN_METRICS_DIR:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run() -> None:
    try:
        logs.setup()
    except ValueError as err:
        raise CannotStart(str(err)) from None
    app = _make_app()
    _check_settings(app)
    # Before anything else starts: werkzeug and amqtt answer a taken port with pages of text.
    _check_free("0.0.0.0", app.config["HTTP_PORT"], "HTTP", "BAGSCAN_HTTP_PORT")
    if not app.config["MQTT_URL"]:
        _check_free(
            EMBEDDED_BROKER_HOST,
            app.config["MQTT_PORT"],
            "the embedded MQTT broker's",
            "BAGSCAN_MQTT_PORT (or BAGSCAN_MQTT_URL to use another broker)",
        )
    _upgrade(app.config["DATABASE_URL"])

    broker = None
    mqtt_url = app.config["MQTT_URL"]
    if not mqtt_url:
        port = int(app.config["MQTT_PORT"])
        service_password = secrets.token_urlsafe(24)

        def check(username: str, password: str) -> str | None:
            """The credential's fingerprint (its stored hash) if the login is good."""
            if username == acl.GATEWAY_USER:
                good = secrets.compare_digest(password.encode(), service_password.encode())
                return "service" if good else None
            if not acl.device_login_ok(username):
                return None
            with db.sessions(app)() as session:
                device = session.get(Device, username)
                if device and devices.check_password(device.password_hash, password):
                    return device.password_hash
            return None

        def credentials() -> dict[str, str]:
            with db.sessions(app)() as session:
                rows = session.execute(select(Device.id, Device.password_hash))
                return {device_id: stored for device_id, stored in rows}

        broker = EmbeddedBroker(port, check, credentials, host=EMBEDDED_BROKER_HOST)
        try:
            broker.start()
        except BrokerError as err:  # taken since _check_free looked
            raise CannotStart(
                f"the embedded MQTT broker cannot start ({_why(err)}): set BAGSCAN_MQTT_PORT "
                "to a free port, or BAGSCAN_MQTT_URL to use another broker"
            ) from None
        mqtt_url = f"mqtt://{acl.GATEWAY_USER}:{service_password}@127.0.0.1:{port}"
        app.config["DEVICE_MQTT_PORT"] = port

    # /api/health in this process and in gunicorn's workers reads the ingest's state here.
    state_dir = tempfile.mkdtemp(prefix="bagscan-ingest-")
    os.environ[health.STATE_ENV] = str(Path(state_dir) / "state.json")
    state = health.IngestState(os.environ[health.STATE_ENV])
    instance = partition.instance_name(app.config)
    share = app.config.get("MQTT_SHARE", "")
    split = None
    if share and app.config["MQTT_DISPATCH"] == "partition":

        def split(ingest: Ingest) -> partition.Partition:
            return partition.Partition(app, instance, ingest.subscribe, ingest.unsubscribe)

    ingest = Ingest(mqtt_url, f"bagscan-gw-{instance}", share, state, split)
    app.extensions["bagscan.publisher"] = ingest
    ingest.start()
    closer = AutoClose(app)  # the system's close of stale bags, on a schedule
    closer.start()
    # Changes pushed to the handhelds as deltas (issue 16), through the ingest's connection.
    feed = config_feed.start(
        app,
        lambda device_id, data, retained: ingest.client.publish(
            wire.topic(device_id, wire.CONFIG), data, qos=1, retain=retained
        ),
    )

    # Parcels a handheld's cache lacks, asked for while it scans (issue 16).
    lookup = parcel_lookup.start(
        app, mqtt_url, f"bagscan-lookup-{instance}", app.config.get("MQTT_SHARE", "")
    )
    # Firmware updates over the air: offers, chunks and confirmations (issue 19).
    updates = firmware_feed.start(
        app, mqtt_url, f"bagscan-firmware-{instance}", app.config.get("MQTT_SHARE", "")
    )

    stopping = threading.Event()
    watch = threading.Thread(target=_watch_health, args=(app, stopping), daemon=True)
    watch.start()
    workers = int(app.config.get("HTTP_WORKERS") or 0)
    try:
        if workers > 0:
            _serve_gunicorn(app, workers, mqtt_url, stopping)
        else:
            _serve_threaded(app, stopping)
    finally:
        updates.stop()
        lookup.stop()
        feed.stop()
        closer.stop()
        ingest.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        log.info("stopped")


def _make_app() -> Flask:
    url = os.environ.get("BAGSCAN_DATABASE_URL", "")
    try:
        if url:
            _check_database_url(url)
        return create_app()
    except (ArgumentError, NoSuchModuleError, ModuleNotFoundError) as err:
        raise CannotStart(
            f"BAGSCAN_DATABASE_URL is not a database URL this gateway can use ({_why(err)}): "
            "give sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    except ValueError as err:  # a setting the factory checks (gateway/settings.py)
        raise CannotStart(f"{err}: fix it in BAGSCAN_<NAME> or the instance config.py") from None


def _check_database_url(url: str) -> None:
    """A SQLite file's folder must exist: SQLite only says "unable to open database file"."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).resolve().parent
        if not folder.is_dir():
            raise CannotStart(
                f"the folder {folder} of the SQLite database in BAGSCAN_DATABASE_URL does not "
                "exist: create it or point BAGSCAN_DATABASE_URL elsewhere"
            )


# Settings that are whole numbers, with their least value (ports also at most 65535).
_NUMBERS = {
    "HTTP_PORT": 1,
    "MQTT_PORT": 1,
    "DEVICE_MQTT_PORT": 1,
    "HTTP_WORKERS": 0,
    "HTTP_THREADS": 1,
    "HEALTH_LOG_SECONDS": 1,
}


def _check_settings(app: Flask) -> None:
    """from_prefixed_env keeps a value that is not JSON as text: BAGSCAN_HTTP_PORT=abc."""
    for name, least in _NUMBERS.items():
        value = app.config.get(name)
        if isinstance(value, str) and value.strip().isdigit():  # from an instance config.py
            value = app.config[name] = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and name.endswith("PORT"):
            ok = 1 <= value <= 65535
        elif ok:
            ok = value >= least
        if not ok:
            want = f"a whole number >= {least}"
            if name.endswith("PORT"):
                want = "a port number (1-65535)"
            raise CannotStart(f"BAGSCAN_{name} must be {want}, not {value!r}")
    dispatch = app.config.get("MQTT_DISPATCH")
    if dispatch not in ("partition", "share"):
        raise CannotStart(f"BAGSCAN_MQTT_DISPATCH must be partition or share, not {dispatch!r}")
    # The ledger's device row locks keep two instances from applying one device's records
    # twice (`_settle`); SQLite locks no rows across processes, and three instances on it
    # built wrong bags.
    backend = make_url(app.config["DATABASE_URL"]).get_backend_name()
    if app.config.get("MQTT_SHARE") and backend == "sqlite":
        raise CannotStart(
            "BAGSCAN_MQTT_SHARE is for several gateway instances, which need PostgreSQL "
            "(SQLite locks no rows across processes, docs/deploy.md): set "
            "BAGSCAN_DATABASE_URL to a PostgreSQL database, or unset BAGSCAN_MQTT_SHARE"
        )
    # Minutes between auto-close sweeps: 0 turns them off, a fraction suits a test or a demo.
    every = app.config.get("CLOSE_EVERY_MINUTES")
    if isinstance(every, bool) or not isinstance(every, int | float) or not every >= 0:
        raise CannotStart(
            f"BAGSCAN_CLOSE_EVERY_MINUTES must be a number of minutes >= 0, not {every!r}"
        )


def _check_free(host: str, port: int, what: str, setting: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise CannotStart(
                f"{what} port {port} is taken by another program: set {setting} to a free port"
            ) from None


def _upgrade(url: str) -> None:
    """The migrations, or one line on why the database cannot be reached."""
    try:
        db.upgrade(url)
    except OperationalError as err:
        where = make_url(url).render_as_string(hide_password=True)
        raise CannotStart(
            f"cannot reach the database {where} ({_why(err.orig or err)}): check that it runs "
            "and that BAGSCAN_DATABASE_URL names it"
        ) from None


def _why(err: BaseException) -> str:
    """The first line of an error's own text (drivers add hints and SQL on further lines)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _watch_health(app: Flask, stopping: threading.Event) -> None:
    """Log what does not work when it stops, every HEALTH_LOG_SECONDS while it lasts, and
    when it works again: broker and database come back by themselves, so does health."""
    every = float(app.config["HEALTH_LOG_SECONDS"])
    logged_at: dict[str, float] = {}  # part -> when its problem was last logged
    while not stopping.wait(WATCH_EVERY):
        try:
            problems = gateway_health.problems(app)
        except Exception:  # noqa: BLE001 - the watch must outlive what it watches
            log.exception("health watch failed")
            continue
        now = time.monotonic()
        for problem in problems:
            if problem.part not in logged_at or now - logged_at[problem.part] >= every:
                logged_at[problem.part] = now
                log.error("not working: %s (%s)", problem.reason, problem.detail)
        for part in set(logged_at) - {p.part for p in problems}:
            del logged_at[part]
            log.info("working again: %s", part.replace("_", " "))


def _serve_threaded(app, stopping: threading.Event) -> None:
    server = make_server("0.0.0.0", app.config["HTTP_PORT"], app, threaded=True)
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
