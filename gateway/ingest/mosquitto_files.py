"""`flask --app gateway mqtt-files`: Mosquitto's password file and ACL from the device table.

Device passwords are kept only as Mosquitto-format hashes (gateway/services/devices.py), so the files
can be rewritten at any time without knowing a single password; run it after provisioning
and send Mosquitto SIGHUP to reload them (docs/deploy.md).
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import db
from gateway.ingest import acl
from gateway.models import Device
from gateway.services import devices


def password_file(session: Session, gateway_password: str) -> str:
    """Lines `username:hash` for the gateway's service account and every device."""
    lines = [f"{acl.GATEWAY_USER}:{devices.mosquitto_hash(gateway_password)}"]
    for device_id, stored in session.execute(
        select(Device.id, Device.password_hash).order_by(Device.id)
    ):
        # Older rows hold a werkzeug hash Mosquitto cannot read: re-issue their credentials.
        if acl.device_login_ok(device_id) and stored.startswith("$7$"):
            lines.append(f"{device_id}:{stored}")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # Mosquitto never reads a half-written file


@click.command("mqtt-files")
@click.option("--passwd", "passwd_path", type=click.Path(dir_okay=False), required=True)
@click.option("--acl", "acl_path", type=click.Path(dir_okay=False), required=True)
@click.option(
    "--gateway-password",
    envvar="BAGSCAN_MQTT_GATEWAY_PASSWORD",
    help="the service account's password (default: the one in BAGSCAN_MQTT_URL)",
)
@with_appcontext
def mqtt_files(passwd_path: str, acl_path: str, gateway_password: str | None) -> None:
    """Write Mosquitto's password_file and acl_file for all devices and the gateway."""
    if not gateway_password:
        url = urlsplit(current_app.config.get("MQTT_URL") or "")
        if url.username and unquote(url.username) != acl.GATEWAY_USER:
            raise click.UsageError(f"BAGSCAN_MQTT_URL must log in as {acl.GATEWAY_USER}")
        gateway_password = unquote(url.password or "")
    if not gateway_password:
        raise click.UsageError("give --gateway-password or a password in BAGSCAN_MQTT_URL")
    with db.sessions(current_app)() as session:
        text = password_file(session, gateway_password)
    _write(Path(passwd_path), text, 0o600)
    _write(Path(acl_path), acl.mosquitto_acl(), 0o644)
    click.echo(f"{len(text.splitlines()) - 1} devices written to {passwd_path}; ACL in {acl_path}")


def init_app(app: Flask) -> None:
    app.cli.add_command(mqtt_files)
