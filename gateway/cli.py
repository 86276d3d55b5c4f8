"""Flask CLI commands: `flask --app gateway <command>`."""

import click
from flask import Flask, current_app

from gateway import db, devices, mqtt_cli


@click.command("db-upgrade")
def db_upgrade() -> None:
    """Apply every pending database migration."""
    db.upgrade(current_app.config["DATABASE_URL"])
    click.echo("database is at the newest migration")


@click.command("add-device")
@click.argument("device_id")
def add_device(device_id: str) -> None:
    """Create a device (or renew its password) and print its MQTT credentials once."""
    with db.transaction(current_app) as session:
        try:
            device, password = devices.provision(
                session, device_id, current_app.config["BAG_RANGE_SIZE"]
            )
        except devices.ProvisionError as err:
            raise click.BadParameter(str(err)) from None
        click.echo(f"device {device.id}: username {device.id} password {password}")
        click.echo(f"bag numbers {device.bag_range_lo}..{device.bag_range_hi}")


def init_app(app: Flask) -> None:
    app.cli.add_command(db_upgrade)
    app.cli.add_command(add_device)
    mqtt_cli.init_app(app)
