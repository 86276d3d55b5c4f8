"""The ledger in-process: record times, the clock flag, quarantine, idempotence."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from devkit.wire_device import record
from gateway import create_app, db
from gateway.ingest import registry
from gateway.ingest.ledger import CLOCK_SKEW_LIMIT_S, Ledger, occurred_at, ticks_diff
from gateway.models import Bag, BagParcel, Device, Record
from gateway.services import devices
from protocol import wire

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@pytest.fixture
def app(tmp_path):
    url = f"sqlite:///{tmp_path / 'gw.sqlite'}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "x"})
    db.upgrade(url)
    with db.transaction(app) as session:
        devices.provision(session, "hh-1", 100)
    return app


def _store(app, ledger, recs=None, status=None, at=T0):
    with db.transaction(app) as session:
        acks = ledger.store(
            session, {"hh-1": recs} if recs else {}, {"hh-1": status} if status else {}, at
        )
        ledger.apply(session, ["hh-1"])
    return acks.get("hh-1")


def _times(app):
    with db.sessions(app)() as session:
        return [r.occurred_at for r in session.query(Record).order_by(Record.seq)]


def test_ticks_wrap_at_2_to_the_30():
    assert ticks_diff(5, 2**30 - 5) == 10
    assert ticks_diff(2**30 - 5, 5) == -10


def test_a_synced_record_keeps_its_wall_clock():
    rec = dict(record(1), w=int(T0.timestamp()), q=1)
    assert occurred_at(rec, T0 + timedelta(hours=3)) == T0


def test_unsynced_records_are_dated_from_a_synced_record_of_the_same_boot(app):
    # Boot 7 starts offline: two unsynced records, then the gateway sets the clock.
    synced_at = int(T0.timestamp()) + 600
    recs = [
        dict(record(1), b=7, t=1_000, w=5, q=0),
        dict(record(2), b=7, t=61_000, w=65, q=0),
        dict(record(3), b=7, t=601_000, w=synced_at, q=1),
    ]
    assert _store(app, Ledger(), recs, at=T0 + timedelta(hours=1)) == 3
    assert _times(app) == [T0, T0 + timedelta(seconds=60), T0 + timedelta(seconds=600)]


def test_unsynced_records_are_dated_from_the_status_when_nothing_else_is_known(app):
    ledger = Ledger()
    status = {"v": 1, "online": True, "wall": 100, "boot": 2, "t": 50_000, "q": 0}
    _store(app, ledger, status=status, at=T0)
    _store(app, ledger, [dict(record(1), b=2, t=20_000, w=70, q=0)], at=T0 + timedelta(minutes=5))
    assert _times(app) == [T0 - timedelta(seconds=30)]


def test_a_clock_more_than_120_s_off_is_flagged(app):
    ledger = Ledger()
    now = int(T0.timestamp())
    _store(app, ledger, status={"v": 1, "online": True, "wall": now + CLOCK_SKEW_LIMIT_S}, at=T0)
    with db.sessions(app)() as session:
        assert not devices.clock_off(session.get(Device, "hh-1"))
    _store(app, ledger, status={"v": 1, "online": True, "wall": now - 3600}, at=T0)
    with db.sessions(app)() as session:
        device = session.get(Device, "hh-1")
        assert devices.clock_off(device)
        assert device.status["clock_skew_s"] == -3600


def test_the_same_records_twice_are_one_row_each_and_the_ack_is_cumulative(app):
    ledger = Ledger()
    recs = [record(s) for s in range(1, 6)]
    assert _store(app, ledger, recs) == 5
    assert _store(app, Ledger(), recs[1:3]) == 5  # another gateway process, same database
    with db.sessions(app)() as session:
        assert session.query(Record).count() == 5
        assert session.get(Device, "hh-1").applied_seq == 5


def test_a_record_the_registry_cannot_apply_is_quarantined_not_blocking(app, monkeypatch):
    real = registry.apply

    def flaky(session, device, rec):
        if rec.seq == 2:
            raise RuntimeError("registry bug")
        real(session, device, rec)

    monkeypatch.setattr(registry, "apply", flaky)
    ledger = Ledger()
    assert _store(app, ledger, [record(s) for s in range(1, 5)]) == 4
    with db.sessions(app)() as session:
        device = session.get(Device, "hh-1")
        assert device.applied_seq == 4
        assert devices.quarantined(device) == [2]
    assert ledger.quarantined == 1


@pytest.mark.parametrize("failing", ["hh-1", "hh-2"])
def test_a_run_that_fails_spoils_no_other_devices_run(app, monkeypatch, failing):
    """One apply prefetches for every device at once (gateway/ingest/ledger.py); when one record
    fails, nothing of the rolled-back run may remain in what the other device's run reads or
    writes: only the failing device is applied again record by record, and exactly its
    failing record is quarantined."""
    with db.transaction(app) as session:
        devices.provision(session, "hh-2", 100)
    with db.sessions(app)() as session:
        bags = {d: wire.bag_number(session.get(Device, d).bag_range_lo) for d in ("hh-1", "hh-2")}
    real = registry.apply
    redone = []  # devices whose run was rolled back and applied again record by record

    def flaky(session, device, rec):
        if session.info.get(registry._BATCH) is None:
            redone.append(device.id)
        if device.id == failing and rec.seq == 3:
            raise RuntimeError("registry bug")
        real(session, device, rec)

    monkeypatch.setattr(registry, "apply", flaky)
    trk = "LZ{}{:08d}CN".format
    recs = {
        d: [record(1, "bag_open", bag=bag)]
        + [record(s, bag=bag, trk=trk(d[-1], s)) for s in range(2, 6)]
        for d, bag in bags.items()
    }
    ledger = Ledger()
    with db.transaction(app) as session:
        ledger.store(session, recs, {}, T0)
        assert ledger.apply(session, list(bags)) == 10
    assert set(redone) == {failing}
    with db.sessions(app)() as session:
        for device_id in bags:
            assert devices.quarantined(session.get(Device, device_id)) == (
                [3] if device_id == failing else []
            )
        members = {
            device_id: session.scalars(
                select(BagParcel.tracking_no)
                .join(Bag, Bag.id == BagParcel.bag_id)
                .where(Bag.bag_no == bag_no)
                .order_by(BagParcel.id)
            ).all()
            for device_id, bag_no in bags.items()
        }
    for device_id, trks in members.items():
        kept = (2, 4, 5) if device_id == failing else (2, 3, 4, 5)
        assert trks == [trk(device_id[-1], s) for s in kept]


def test_the_runs_of_many_devices_write_their_memberships_at_once(app):
    """At a steady load each device has a record or two waiting: one apply of many devices
    writes every bag's new members in one statement, not a statement (and a flush) per device
    (issue 20), and each bag gets its own device's parcels."""
    ids = [f"hh-{n}" for n in range(1, 7)]
    with db.transaction(app) as session:
        for device_id in ids[1:]:
            devices.provision(session, device_id, 100)
    with db.sessions(app)() as session:
        bags = {d: wire.bag_number(session.get(Device, d).bag_range_lo) for d in ids}
    recs = {
        d: [record(1, "bag_open", bag=bag), record(2, bag=bag, trk=f"LZ{d[-1]}0000001CN")]
        for d, bag in bags.items()
    }
    inserts = []

    def count(_conn, _cursor, statement, *_args):
        if statement.startswith("INSERT INTO bag_parcels"):
            inserts.append(statement)

    engine = app.extensions["bagscan.engine"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        with db.transaction(app) as session:
            Ledger().store(session, recs, {}, T0)
            assert Ledger().apply(session, ids) == 12
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    with db.sessions(app)() as session:
        for device_id, bag_no in bags.items():
            bag = session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one()
            assert [p.tracking_no for p in bag.parcels] == [f"LZ{device_id[-1]}0000001CN"]


def test_a_handheld_behind_on_its_config_is_timed_from_its_first_status_while_online(app):
    """The exceptions queue flags a handheld behind for long (issue 17): the ingest keeps since
    when, counting only while it is online."""
    ledger = Ledger()
    with db.transaction(app) as session:
        session.get(Device, "hh-1").config_version = 7
    online = {"v": wire.VERSION, "online": True}
    minute = timedelta(minutes=1)

    def since():
        with db.sessions(app)() as session:
            return devices.config_state(session.get(Device, "hh-1")).behind_since

    _store(app, ledger, status=dict(online, s=5), at=T0)
    _store(app, ledger, status=dict(online, s=6), at=T0 + minute)
    assert since() == T0
    _store(app, ledger, status={"v": wire.VERSION, "online": False}, at=T0 + 2 * minute)
    assert since() is None
    _store(app, ledger, status=dict(online, s=6), at=T0 + 3 * minute)
    assert since() == T0 + 3 * minute
    _store(app, ledger, status=dict(online, s=7), at=T0 + 4 * minute)
    assert since() is None
