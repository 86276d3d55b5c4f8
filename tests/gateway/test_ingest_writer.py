"""The store process acknowledges a batch once it is stored and applies it in the next time
slice, a smaller share of the time in a flood (gateway/ingest/writer.py); either way the ack
means stored and the bags follow in order."""

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
def store(app):
    with db.transaction(app) as session:
        for device_id in ("hh-flood", "hh-calm"):
            devices.provision(session, device_id, 1000)
    return writer.Store(app, os.getppid())


def applied(app, device_id: str) -> int:
    with db.sessions(app)() as session:
        return session.get(Device, device_id).applied_seq


def test_a_batch_is_acknowledged_once_stored_and_applied_in_the_next_time_slice(app, store):
    acks = store.process(parcels("hh-calm", 1, 3) + parcels("hh-flood", 1, 2))
    assert acks == {"hh-calm": 3, "hh-flood": 2}
    assert applied(app, "hh-calm") == 0 and store._lagging == {"hh-calm", "hh-flood"}
    store._apply_some()  # what the store process does once it has sent the answer
    assert applied(app, "hh-calm") == 3 and applied(app, "hh-flood") == 2
    assert not store._lagging


def test_in_a_flood_applying_gets_the_smaller_share_of_the_time(app, store, monkeypatch):
    # A flood scaled down: more than 10 records/s over a 50 ms window.
    monkeypatch.setattr(writer, "FLOOD_RATE", 10)
    monkeypatch.setattr(writer, "RATE_WINDOW", 0.05)
    store.process(parcels("hh-flood", 1, 50))
    store._flowing_at = time.monotonic()  # as serve() notes each answer: messages flow
    store._apply_some()
    calm = store._apply_at - time.monotonic()  # the next slice: after APPLY_BUSY of storing
    time.sleep(0.06)
    store.process(parcels("hh-calm", 1, 2))  # the window closes: a flood was seen
    assert store._flooded
    store._flowing_at = time.monotonic()
    store._apply_some()
    flooded = store._apply_at - time.monotonic()  # after 9 x APPLY_BUSY of storing
    assert calm <= writer.APPLY_BUSY < 5 * writer.APPLY_BUSY < flooded
    while store._lagging:
        store._apply(1.0)
    assert applied(app, "hh-calm") == 2
    assert applied(app, "hh-flood") == 50


def test_lagging_devices_are_applied_a_bounded_turn_at_a_time_each_in_its_turn(
    app, store, monkeypatch
):
    # Three devices a turn: every turn's queries name few devices, and none waits for more
    # than the turns of the others ahead of it.
    monkeypatch.setattr(writer, "APPLY_DEVICES", 3)
    ids = [f"hh-lag-{i}" for i in range(7)]
    with db.transaction(app) as session:
        for device_id in ids:
            devices.provision(session, device_id, 1000)
    store.process([m for d in ids for m in parcels(d, 1, 2)])
    assert store._lagging == set(ids)
    turns = []
    while store._lagging:
        before = set(store._lagging)
        store._apply(1.0)
        turns.append(before - store._lagging)
        assert len(turns) < 10
    assert turns == [set(ids[:3]), set(ids[3:6]), set(ids[6:])]  # in id order
    assert all(applied(app, d) == 2 for d in ids)
