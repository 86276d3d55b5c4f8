"""The store process applies a batch before its ack at a steady load and after it in a flood
(gateway/ingest/writer.py); either way the ack means stored and the bags follow in order."""

import json
import os
import time

import pytest

from gateway import db
from gateway.ingest import writer
from gateway.models import Device
from gateway.services import devices
from protocol import wire


def parcels(device_id: str, first: int, n: int) -> list[writer.Message]:
    topic = wire.topic(device_id, wire.EVENTS)
    now = int(time.time())
    return [
        (
            topic,
            json.dumps(
                {
                    "v": 1,
                    "r": [
                        {"s": s, "b": 1, "t": s, "w": now, "q": 1, "k": "parcel",
                         "bag": wire.bag_number(1), "trk": f"LZ{s:09d}CN"}
                    ],
                }
            ).encode(),
        )
        for s in range(first, first + n)
    ]  # fmt: skip


@pytest.fixture
def store(app, monkeypatch):
    # A budget no cold process overruns: what is tested is whether applying runs before the
    # ack, not how far 5 ms go.
    monkeypatch.setattr(writer, "INLINE_APPLY", 30.0)
    with db.transaction(app) as session:
        for device_id in ("hh-flood", "hh-calm"):
            devices.provision(session, device_id, 1000)
    return writer.Store(app, os.getppid())


def applied(app, device_id: str) -> int:
    with db.sessions(app)() as session:
        return session.get(Device, device_id).applied_seq


def test_at_a_steady_load_a_batch_is_applied_before_its_ack(app, store):
    assert store.process(parcels("hh-calm", 1, 3)) == {"hh-calm": 3}
    assert applied(app, "hh-calm") == 3
    assert not store._lagging


def test_in_a_flood_the_ack_goes_first_and_the_bags_follow(app, store, monkeypatch):
    # A flood scaled down: more than 10 records/s over a 50 ms window.
    monkeypatch.setattr(writer, "INLINE_RATE", 10)
    monkeypatch.setattr(writer, "RATE_WINDOW", 0.05)
    store.process(parcels("hh-flood", 1, 50))
    time.sleep(0.06)
    # A device whose bags are up to date, in the batch after the flood was seen: stored and
    # acknowledged, not yet applied.
    assert store.process(parcels("hh-calm", 1, 2)) == {"hh-calm": 2}
    assert applied(app, "hh-calm") == 0
    assert "hh-calm" in store._lagging
    store._apply(1.0)  # the next time slice
    assert applied(app, "hh-calm") == 2
    assert applied(app, "hh-flood") == 50


def test_lagging_devices_are_applied_a_bounded_turn_at_a_time_each_in_its_turn(
    app, store, monkeypatch
):
    # Three devices a turn: every turn's queries name few devices, and none waits for more
    # than the turns of the others ahead of it.
    monkeypatch.setattr(writer, "APPLY_DEVICES", 3)
    monkeypatch.setattr(writer, "INLINE_RATE", 10)
    monkeypatch.setattr(writer, "RATE_WINDOW", 0.05)
    ids = [f"hh-lag-{i}" for i in range(7)]
    with db.transaction(app) as session:
        for device_id in ids:
            devices.provision(session, device_id, 1000)
    store.process(parcels("hh-flood", 1, 50))
    time.sleep(0.06)
    store.process([m for d in ids for m in parcels(d, 1, 2)])  # seen as a flood: not applied
    assert store._lagging == set(ids)
    turns = []
    while store._lagging:
        before = set(store._lagging)
        store._apply(1.0)
        turns.append(before - store._lagging)
        assert len(turns) < 10
    assert turns == [set(ids[:3]), set(ids[3:6]), set(ids[6:])]  # in id order
    assert all(applied(app, d) == 2 for d in ids)


def test_a_batch_from_many_devices_is_acknowledged_first_and_applied_in_turns(app, store):
    ids = [f"hh-many-{i:02d}" for i in range(writer.INLINE_DEVICES + 1)]
    with db.transaction(app) as session:
        for device_id in ids:
            devices.provision(session, device_id, 1000)
    acks = store.process([m for d in ids for m in parcels(d, 1, 1)])
    assert acks == dict.fromkeys(ids, 1)
    assert store._lagging == set(ids) and all(applied(app, d) == 0 for d in ids)
    store._apply(1.0)  # the next time slice
    assert all(applied(app, d) == 1 for d in ids)
