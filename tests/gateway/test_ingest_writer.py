"""The store process acknowledges a batch once it is stored; its applier thread applies it
right behind, a smaller share of the time in a flood (gateway/ingest/writer.py, applier.py);
either way the ack means stored and the bags follow in order."""

import json
import os
import threading
import time

import pytest
from sqlalchemy import select

from gateway import clock, db
from gateway.ingest import applier, registry, writer
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


def test_a_batch_is_acknowledged_once_stored_and_applied_by_the_applier_next(app, store):
    acks = store.process(parcels("hh-calm", 1, 3) + parcels("hh-flood", 1, 2))
    assert acks == {"hh-calm": 3, "hh-flood": 2}
    assert applied(app, "hh-calm") == 0 and store.applier.lagging == {"hh-calm", "hh-flood"}
    for _ in range(5):  # what the applier's thread does beside storing (a 10 ms budget each)
        store.applier.step()
    assert applied(app, "hh-calm") == 3 and applied(app, "hh-flood") == 2
    assert not store.applier.lagging


def test_in_a_flood_applying_gets_the_smaller_share_of_the_time(app, store, monkeypatch):
    # A flood scaled down: more than 10 records/s over a 50 ms window.
    monkeypatch.setattr(applier, "FLOOD_RATE", 10)
    monkeypatch.setattr(applier, "RATE_WINDOW", 0.05)
    store.process(parcels("hh-flood", 1, 50))
    calm = store.applier.step()  # the pause before its next transaction
    time.sleep(0.06)
    store.process(parcels("hh-calm", 1, 2))  # the window closes: a flood was seen
    flooded = store.applier.step()
    assert calm <= applier.APPLY_BUSY < 5 * applier.APPLY_BUSY < flooded
    while store.applier.lagging:
        store.applier.apply_turn(1.0)
    assert applied(app, "hh-calm") == 2
    assert applied(app, "hh-flood") == 50


def test_once_messages_pause_applying_runs_flat_out(app, store, monkeypatch):
    monkeypatch.setattr(applier, "QUIET", 0.05)
    store.process(parcels("hh-calm", 1, 2))
    time.sleep(0.06)
    assert store.applier.step() == 0.0
    assert applied(app, "hh-calm") == 2


def test_lagging_devices_are_applied_a_bounded_turn_at_a_time_each_in_its_turn(
    app, store, monkeypatch
):
    # Three devices a turn: every turn's queries name few devices, and none waits for more
    # than the turns of the others ahead of it.
    monkeypatch.setattr(applier, "APPLY_DEVICES", 3)
    ids = [f"hh-lag-{i}" for i in range(7)]
    with db.transaction(app) as session:
        for device_id in ids:
            devices.provision(session, device_id, 1000)
    store.process([m for d in ids for m in parcels(d, 1, 2)])
    assert store.applier.lagging == set(ids)
    turns = []
    while store.applier.lagging:
        before = store.applier.lagging
        store.applier.apply_turn(1.0)
        turns.append(before - store.applier.lagging)
        assert len(turns) < 10
    assert turns == [set(ids[:3]), set(ids[3:6]), set(ids[6:])]  # in id order
    assert all(applied(app, d) == 2 for d in ids)


def test_a_device_stored_again_while_its_turn_is_applied_stays_lagging(app, store, monkeypatch):
    # Storing commits in a thread of its own: records committed after the applying
    # transaction looked whether the device is still behind must not be forgotten.
    store.process(parcels("hh-calm", 1, 2))
    real_lagging = store.applier.ledger.lagging

    def look_then_storing_commits(session, device_ids=None):
        behind = real_lagging(session, device_ids)  # hh-calm: all applied
        store.applier.behind({"hh-calm"}, 1)  # record 3, committed just after the look
        return behind

    monkeypatch.setattr(store.applier.ledger, "lagging", look_then_storing_commits)
    store.applier.apply_turn(1.0)
    monkeypatch.undo()
    with db.transaction(app) as session:  # what that commit stored
        topic, payload = parcels("hh-calm", 3, 1)[0]
        store.ledger.store(session, {"hh-calm": json.loads(payload)["r"]}, {}, clock.now())
    assert store.applier.lagging == {"hh-calm"}
    store.applier.apply_turn(1.0)
    assert applied(app, "hh-calm") == 3


def test_the_applier_applies_what_is_stored_beside_the_store(app, store):
    # In a process of its own on PostgreSQL, in a thread on SQLite.
    store.applier.start()
    try:
        store.process(parcels("hh-calm", 1, 3))
        deadline = time.monotonic() + 10
        while applied(app, "hh-calm") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        store.applier.stop()
    assert applied(app, "hh-calm") == 3


def test_an_instance_overtaken_while_applying_rolls_back_and_nothing_applies_twice(
    app, store, monkeypatch
):
    # A partition handing devices over: two instances apply one device at once. Applying
    # reads devices without a lock, so the one that writes applied_seq second must notice.
    monkeypatch.setattr(applier, "RETRY_WAIT", 0)
    other = writer.Store(app, os.getppid())
    store.process(parcels("hh-calm", 1, 3))
    other.applier.behind({"hh-calm"}, 3)
    real_apply = registry.apply
    overtaking = []

    def the_other_applies_first(session, device, record):
        if not overtaking:
            overtaking.append(None)  # the other's own registry.apply calls come here too
            overtaking[0] = other.applier.apply_turn(1.0)
        real_apply(session, device, record)

    monkeypatch.setattr(registry, "apply", the_other_applies_first)
    assert store.applier.apply_turn(1.0) == 0  # rolled back: PostgreSQL Overtaken, SQLite busy
    assert overtaking == [3]
    monkeypatch.undo()
    assert store.applier.apply_turn(1.0) == 0 and not store.applier.lagging
    assert applied(app, "hh-calm") == 3


def test_storing_does_not_wait_for_an_applying_transaction_that_named_the_device(app, store):
    # Applying inserts rows that name a device (scans, disagreements), and PostgreSQL holds a
    # key-share lock on the device's row until applying commits. Storing locks the row FOR
    # NO KEY UPDATE, which does not wait for it: with FOR UPDATE a store waited for a whole
    # applying transaction, and the two deadlocked with applying's _settle.
    if db.sessions(app)().bind.dialect.name == "sqlite":
        pytest.skip("SQLite has no row locks: one writer at a time (applier.Turns)")
    done = []
    with db.sessions(app)() as applying, applying.begin():
        applying.execute(
            select(Device.id)
            .where(Device.id == "hh-calm")
            .with_for_update(read=True, key_share=True)  # FOR KEY SHARE, as an insert takes
        )
        storing = threading.Thread(
            target=lambda: done.append(store.process(parcels("hh-calm", 1, 1)))
        )
        storing.start()
        storing.join(10)
        assert done == [{"hh-calm": 1}]
    storing.join()
