"""bagscan gateway: a Flask app factory; the ingest worker and broker start in gateway.serve."""

import os

from flask import Flask
from werkzeug.exceptions import HTTPException


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        DATABASE_URL="sqlite:///" + os.path.join(app.instance_path, "bagscan.sqlite"),
        MQTT_URL="",
        MQTT_PORT=1883,
        HTTP_PORT=5000,
        API_TOKEN="",
        SECRET_KEY="",
        # How many bag numbers a device may use offline before it needs a new range.
        BAG_RANGE_SIZE=1000,
        # The broker address handed to handhelds at provisioning (as they reach it).
        DEVICE_MQTT_HOST="127.0.0.1",
        DEVICE_MQTT_PORT=1883,
        # Scale-out (docs/deploy.md): gunicorn workers for HTTP (0: one threaded process),
        # this instance's name (its MQTT client id; unique per instance), and the shared
        # subscription group several instances consume from.
        HTTP_WORKERS=0,
        HTTP_THREADS=8,
        INSTANCE="",
        MQTT_SHARE="",
        # A larger request body is refused with 413 (a full parcel import is about 3 MB).
        MAX_CONTENT_LENGTH=8 * 1024 * 1024,
        # /metrics answers a scraper with this bearer token; empty: /metrics is off
        # (gateway/metrics.py). bagscan-gateway logs what does not work this often.
        METRICS_TOKEN="",
        HEALTH_LOG_SECONDS=30,
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("BAGSCAN")
    else:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)

    from gateway import cli, db, errors, metrics, settings
    from gateway import health as gateway_health
    from gateway.ingest import mosquitto_files
    from gateway.web import admin, api, auth, i18n, live
    from gateway.web.admin import (
        audit_log,
        bag_actions,
        exception_queue,
        receipts,
        releases_page,
        setup_pages,
    )
    from gateway.web.api import bags, devices, handovers, health, parcels, releases, setup

    db.init_app(app)
    settings.init_app(app)
    cli.init_app(app)
    mosquitto_files.init_app(app)
    auth.init_app(app)
    i18n.init_app(app)
    admin.init_app(app)
    exception_queue.init_app(app)
    # /api/health, the admin pages' banner and a 503 while the database is away (issue 19).
    gateway_health.init_app(app)
    metrics.init_app(app)
    # A refused request, wherever raised, answers {"error": {"code", "message", "field"?}}.
    app.register_error_handler(errors.Refused, errors.as_json)
    # Werkzeug's own errors (404, 405, 413, ...): JSON under /api, the usual pages elsewhere.
    app.register_error_handler(HTTPException, api.http_error)

    # The admin pages and what they need: login, the language switch, the live dashboard.
    app.register_blueprint(auth.bp)
    app.register_blueprint(i18n.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(receipts.bp)
    # What dispatchers and admins do on the pages (issue 17): each action checks its role.
    app.register_blueprint(bag_actions.bp)
    app.register_blueprint(exception_queue.bp)
    app.register_blueprint(setup_pages.bp)
    app.register_blueprint(audit_log.bp)
    app.register_blueprint(releases_page.bp)  # firmware updates (issue 19)
    # The JSON API under /api, one blueprint per resource, and the receipt PDF beside it.
    app.register_blueprint(
        api.blueprint(
            health.bp, bags.bp, parcels.bp, handovers.bp, devices.bp, setup.bp, releases.bp
        )
    )
    app.register_blueprint(handovers.pdf_bp)
    # Prometheus at /metrics, with its own token (METRICS_TOKEN).
    app.register_blueprint(metrics.bp)
    return app


def _instance_secret(instance_path: str) -> str:
    """A per-installation secret kept in the instance folder, never in the repository."""
    path = os.path.join(instance_path, "secret_key")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex())
    with open(path) as f:
        return f.read().strip()
