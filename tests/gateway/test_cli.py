"""CLI commands: import-parcels (all or nothing), add-driver, add-device, close-stale-bags."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from gateway import clock, db
from gateway.domain import lifecycle
from gateway.models import Bag, Device, Driver, Parcel
from gateway.services import couriers

HEADER = "tracking_no,seller_id,status,hub,sea_big_item\n"


def count_parcels(app) -> int:
    with db.sessions(app)() as session:
        return session.scalar(select(func.count()).select_from(Parcel))


def test_import_parcels_csv(app, tmp_path):
    f = tmp_path / "parcels.csv"
    f.write_text(HEADER + "LZ1,1000123,rts,SZ,0\nLZ2,1000123,pending,YW,1\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import-parcels", str(f)])
    assert result.exit_code == 0, result.output
    assert "imported 2 new" in result.output
    assert count_parcels(app) == 2


def test_one_bad_csv_row_imports_nothing_and_names_row_and_field(app, tmp_path):
    f = tmp_path / "parcels.csv"
    f.write_text(HEADER + "LZ1,1000123,rts,SZ,0\nLZ2,1000123,shipped,SZ,0\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import-parcels", str(f)])
    assert result.exit_code != 0
    assert "nothing imported: row 2, status" in result.output
    assert count_parcels(app) == 0


def test_csv_without_the_needed_columns_is_refused(app, tmp_path):
    f = tmp_path / "parcels.csv"
    f.write_text("tracking_no,seller_id\nLZ1,1\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import-parcels", str(f)])
    assert result.exit_code != 0 and "lacks status, hub" in result.output


def test_add_driver_keeps_only_wrapped_keys(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["add-driver", "D7", "--name", "李师傅"], input="2468\n2468\n")
    assert result.exit_code == 0, result.output
    with db.sessions(app)() as session:
        driver = session.get(Driver, "D7")
        key = couriers.unwrap_with_pin(driver, "2468")
        assert key is not None and len(key) == 32
        assert couriers.unwrap_with_pin(driver, "2469") is None
        assert couriers.key_of(driver, app.config["SECRET_KEY"].encode()) == key
        assert key.hex() not in (driver.key_sealed, driver.pin_key)


def test_add_device_binds_role(app):
    result = app.test_cli_runner().invoke(args=["add-device", "hub-1", "--role", "hub"])
    assert result.exit_code == 0 and "password" in result.output
    with db.sessions(app)() as session:
        assert session.get(Device, "hub-1").role == "hub"
    bad = app.test_cli_runner().invoke(args=["add-device", "hub-2", "--account", "99"])
    assert bad.exit_code != 0 and "no account 99" in bad.output


def test_close_stale_bags_closes_what_awaits_pickup_too_long_by_the_gateways_clock(app, handheld):
    hh = handheld("hh-old")
    at = datetime(2026, 8, 5, 2, 0, tzinfo=UTC)
    hh.send("bag_open", at, bag=hh.bag(0))
    hh.send("parcel", at, bag=hh.bag(0), trk="LZ000000001CN")
    hh.send("bag_close", at, bag=hh.bag(0), n=1, g=900, dims=[60, 40, 30])
    hh.send("bag_open", at, bag=hh.bag(1))  # still open on the handheld
    clock.freeze(at + timedelta(hours=72))
    try:
        result = app.test_cli_runner().invoke(args=["close-stale-bags"])
    finally:
        clock.init_app(app)
    assert result.exit_code == 0 and f"closed 1 bags: {hh.bag(0)}" in result.output
    with db.sessions(app)() as session:
        old = session.scalars(select(Bag).where(Bag.bag_no == hh.bag(0))).one()
        open_ = session.scalars(select(Bag).where(Bag.bag_no == hh.bag(1))).one()
        assert old.status == lifecycle.CLOSED and open_.status == lifecycle.SUBMITTED
        assert [h.to_status for h in old.history][-2:] == ["closing", "closed"]
        assert old.history[-1].actor == "system"


def test_create_user_comes_with_the_admin_page(app):
    assert "create-user" in app.cli.commands
