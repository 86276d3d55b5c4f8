"""bagscan gateway: a Flask app factory; the ingest worker and broker start in gateway.serve."""

import os

from flask import Flask


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
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("BAGSCAN")
    else:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)

    from gateway import admin, api, cli, db, settings

    db.init_app(app)
    settings.init_app(app)
    cli.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.pages)
    app.register_blueprint(admin.bp)
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
