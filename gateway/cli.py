"""Flask CLI commands: `flask --app gateway <command>` (docs/api.md, "Command line").

create-user comes with the admin page (gateway/web/auth.py), mqtt-files with the broker
(gateway/ingest/mosquitto_files.py); create_app adds all of them.
"""

import csv

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from gateway import clock, db, settings
from gateway.errors import Refused
from gateway.models import Account, Address
from gateway.services import bags, couriers, device_config, devices, parcels


@click.command("db-upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply every pending database migration."""
    db.upgrade(current_app.config["DATABASE_URL"])
    click.echo("database is at the newest migration")


@click.command("add-device")
@with_appcontext
@click.argument("device_id")
@click.option("--role", type=click.Choice(["seller", "hub"]), default=None)
@click.option("--account", "account_id", type=int, default=None, help="Account id to bind.")
@click.option("--address", "address_id", type=int, default=None, help="Pickup address id.")
def add_device(
    device_id: str, role: str | None, account_id: int | None, address_id: int | None
) -> None:
    """Create a device (or renew its password) and print its MQTT credentials once."""
    with db.transaction(current_app) as session:
        if account_id is not None and session.get(Account, account_id) is None:
            raise click.BadParameter(f"no account {account_id}", param_hint="--account")
        if address_id is not None:
            address = session.get(Address, address_id)
            if address is None or address.kind != "pickup" or address.account_id != account_id:
                raise click.BadParameter(
                    "must be a pickup address of the --account", param_hint="--address"
                )
        try:
            device, password = devices.provision(
                session, device_id, current_app.config["BAG_RANGE_SIZE"]
            )
        except Refused as err:
            raise click.BadParameter(err.message) from None
        if role is not None:
            device.role = role
        if account_id is not None:
            device.account_id = account_id
        if address_id is not None:
            device.pickup_address_id = address_id
        click.echo(f"device {device.id}: username {device.id} password {password}")
        click.echo(f"bag numbers {device.bag_range_lo}..{device.bag_range_hi}")


@click.command("add-driver")
@with_appcontext
@click.argument("driver_id")
@click.option("--name", required=True)
@click.option("--badge", default="")
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--account", "accounts", type=int, multiple=True, help="an account on its route")
def add_driver(driver_id: str, name: str, badge: str, pin: str, accounts: tuple[int, ...]) -> None:
    """Create a driver whose PIN unlocks its signing key on the handhelds of its route."""
    with db.transaction(current_app) as session:
        try:
            secret = settings.secret(session)
            couriers.create(session, secret, driver_id, name, badge, pin, list(accounts))
        except Refused as err:
            raise click.BadParameter(err.message, param_hint=err.field) from None
    click.echo(f"driver {driver_id} created; handhelds get it with their next config")


@click.command("import-parcels")
@with_appcontext
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
def import_parcels(csv_file) -> None:
    """Import parcels from a CSV with the header tracking_no,seller_id,status,hub,sea_big_item.

    One bad row and nothing is imported; the error names the row (1 = first data row).
    """
    reader = csv.DictReader(csv_file)
    missing = [f for f in parcels.FIELDS[:4] if f not in (reader.fieldnames or [])]
    if missing:
        raise click.ClickException(f"the CSV header lacks {', '.join(missing)}")
    try:
        rows = parcels.validate(reader)
    except Refused as err:
        raise click.ClickException(f"nothing imported: {err.message}") from None
    with db.transaction(current_app) as session:
        created, updated = parcels.upsert(session, rows)
    click.echo(f"imported {created} new and {updated} updated parcels")


@click.command("close-stale-bags")
@with_appcontext
def close_stale_bags() -> None:
    """Close bags not picked up within CLOSE_AFTER_HOURS (run it hourly, e.g. from cron)."""
    with db.transaction(current_app) as session:
        closed = bags.close_stale(session, clock.now())
    click.echo(f"closed {len(closed)} bags" + (": " + ", ".join(closed) if closed else ""))


@click.command("device-config")
@with_appcontext
@click.argument("device_id")
def show_device_config(device_id: str) -> None:
    """Print the retained config a device gets (for checking its size and content)."""
    with db.sessions(current_app)() as session:
        device = session.get(devices.Device, device_id)
        if device is None:
            raise click.BadParameter(f"no device {device_id}")
        data = device_config.payload(session, device)
    click.echo(data.decode())
    click.echo(f"{len(data)} bytes", err=True)


def init_app(app: Flask) -> None:
    for command in (
        db_upgrade,
        add_device,
        add_driver,
        import_parcels,
        close_stale_bags,
        show_device_config,
    ):
        app.cli.add_command(command)
