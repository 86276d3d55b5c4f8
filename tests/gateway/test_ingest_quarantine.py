"""One bad record never blocks a device (docs/protocol.md): a record the database cannot store
is quarantined and the acknowledgement moves past it; a wall time far from the gateway's
clock is flagged, not trusted. Through the store process, on SQLite and PostgreSQL."""

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway import db
from gateway.ingest import registry, writer
from gateway.models import BagParcel, Device, Record
from gateway.services import devices
from protocol import wire, wire_schema

BAG = wire.bag_number(1)


def rec(s: int, **fields) -> dict:
    body = {"s": s, "b": 1, "t": s, "w": int(time.time()), "q": 1, "k": "parcel", "bag": BAG}
    return body | {"trk": f"LZ{s:09d}CN"} | fields


def message(*records: dict) -> writer.Message:
    return wire.topic("hh-1", wire.EVENTS), json.dumps({"v": 1, "r": list(records)}).encode()


@pytest.fixture
def store(app):
    with db.transaction(app) as session:
        devices.provision(session, "hh-1", 1000)
    return writer.Store(app, os.getppid())


def sync(store: writer.Store, messages: list[writer.Message]) -> dict[str, int]:
    """Store the messages (the acknowledgements) and apply them, as the applier does next."""
    acks = store.process(messages)
    store.applier.apply_turn(1.0)
    return acks


def device(app) -> Device:
    with db.sessions(app)() as session:
        return session.get(Device, "hh-1")


@pytest.mark.parametrize("together", [False, True], ids=["three messages", "one message"])
def test_a_record_the_database_cannot_store_is_quarantined_between_good_ones(
    app, store, monkeypatch, together
):
    # Should the wire's bounds ever be wider than a column: a boot id past 64 bits passes
    # this validator, and neither database can store it (PostgreSQL: integer out of range;
    # SQLite: too large for INTEGER).
    monkeypatch.setattr(wire_schema, "MAX_INT", 2**70)
    good, bad, after = rec(1, k="bag_open"), rec(2, b=2**64), rec(3)
    del good["trk"]
    msgs = [message(good, bad, after)] if together else [message(r) for r in (good, bad, after)]
    assert sync(store, msgs) == {"hh-1": 3}
    dev = device(app)
    assert dev.applied_seq == 3
    assert devices.quarantined(dev) == [2]
    assert dev.status["last_quarantined"]["seq"] == 2
    assert dev.status["last_quarantined"]["error"]  # the database's reason, as text
    with db.sessions(app)() as session:
        kept = session.scalars(select(Record).where(Record.seq == 2)).one()
        assert kept.kind == registry.QUARANTINED
        assert str(2**64) in kept.body["raw"]
        assert session.scalars(select(BagParcel.tracking_no)).all() == ["LZ000000003CN"]
    # The device goes on: its next record is stored, acknowledged and applied.
    assert sync(store, [message(rec(4))]) == {"hh-1": 4}
    assert device(app).applied_seq == 4


def test_dims_of_infinity_or_nan_are_refused_at_the_wire(app, store):
    close = {"k": "bag_close", "n": 0, "g": 100}
    for dims in ("[1e999, 1, 1]", "[NaN, 1, 1]"):
        body = json.dumps({"v": 1, "r": [rec(1, **close, dims=[0, 0, 0])]})
        payload = body.replace("[0, 0, 0]", dims).encode()
        assert store.process([(wire.topic("hh-1", wire.EVENTS), payload)]) == {}
    assert store.stats["rejected"] == 2
    with db.sessions(app)() as session:
        assert session.scalars(select(Record)).all() == []


def test_a_wall_time_far_from_the_gateway_clock_is_flagged_not_trusted(app, store):
    before = datetime.now(UTC)
    far = rec(1, k="bag_open", w=2**32 - 1)  # synced, says 2106
    del far["trk"]
    assert sync(store, [message(far, rec(2))]) == {"hh-1": 2}
    with db.sessions(app)() as session:
        records = session.scalars(select(Record).order_by(Record.seq)).all()
        assert [r.clock_ok for r in records] == [False, True]
        # No anchor of that boot was trusted: the receipt time, not 2106.
        assert before - timedelta(seconds=1) <= records[0].occurred_at
        assert records[0].occurred_at <= datetime.now(UTC)
    status = device(app).status
    assert status["clock_untrusted_count"] == 1
    assert status["last_clock_untrusted"] == {"seq": 1, "w": 2**32 - 1}
