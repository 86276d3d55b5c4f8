"""The devices split among gateway instances (gateway/ingest/partition.py), step by step.

Two partitions share one database; a fake broker keeps each one's subscriptions and answers
every SUBSCRIBE at once; the clock is moved by hand. The instances in a real broker are in
test_shared_subscription.py.
"""

import itertools

import pytest

from devkit.database import scratch_database
from gateway import create_app, db
from gateway.ingest import partition
from gateway.models import Device
from protocol import wire

DEVICES = [f"hh-p{i:03d}" for i in range(60)]


class FakeBroker:
    """Subscriptions per client; a dead client's go with its connection."""

    def __init__(self):
        self.subscribed: dict[str, set[str]] = {}
        self.partitions: dict[str, partition.Partition] = {}
        self._mids = itertools.count(1)

    def client(self, app, name: str, connect: bool = True) -> partition.Partition:
        self.subscribed[name] = set()

        def subscribe(topics: list[str]) -> int:
            self.subscribed[name].update(topics)
            mid = next(self._mids)
            self.partitions[name].acknowledged(mid)  # the SUBACK, read on the next step
            return mid

        def unsubscribe(topics: list[str]) -> None:
            self.subscribed[name].difference_update(topics)

        self.partitions[name] = partition.Partition(app, name, subscribe, unsubscribe)
        if connect:
            self.partitions[name].connected()
        return self.partitions[name]

    def kill(self, name: str) -> None:
        del self.partitions[name]
        self.subscribed[name].clear()

    def takers(self) -> dict[str, int]:
        """How many clients receive each device's events."""
        return {
            d: sum(wire.topic(d, wire.EVENTS) in subs for subs in self.subscribed.values())
            for d in DEVICES
        }


@pytest.fixture
def app(tmp_path):
    with scratch_database(tmp_path) as url:
        db.upgrade(url)
        app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "s"})
        with db.transaction(app) as session:
            for device_id in DEVICES:
                session.add(Device(id=device_id, password_hash="x", bag_range_lo=1, bag_range_hi=9))
        yield app
        app.extensions["bagscan.engine"].dispose()


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(partition.time, "monotonic", lambda: now[0])
    return now


def test_an_instance_that_leaves_moves_only_its_own_buckets():
    three = {b: partition.owner(b, ["gw-a", "gw-b", "gw-c"]) for b in range(partition.BUCKETS)}
    two = {b: partition.owner(b, ["gw-a", "gw-b"]) for b in range(partition.BUCKETS)}
    assert {b for b in three if three[b] != two[b]} == {b for b in three if three[b] == "gw-c"}
    assert 0 < sum(o == "gw-a" for o in two.values()) < partition.BUCKETS


def test_subscriptions_go_in_packets_mosquitto_takes():
    topics = [wire.topic(f"device-{i:026d}", wire.EVENTS) for i in range(10_000)]
    groups = list(partition.packets(topics))
    assert [t for g in groups for t in g] == topics
    assert max(sum(len(t) + 3 for t in g) for g in groups) <= partition.PACKET_BYTES
    assert len(groups) > 1


def test_buckets_are_handed_over_without_a_gap_and_a_dead_instances_move(app, clock):
    broker = FakeBroker()
    a = broker.client(app, "gw-a")
    a.step()
    a.step()
    assert set(broker.takers().values()) == {1}
    assert a.held == set(range(partition.BUCKETS))

    # b beats before its MQTT connection is up: a sees it live, and keeps b's share
    # until b holds it.
    b = broker.client(app, "gw-b", connect=False)
    for p in (b, a):
        clock[0] += partition.BEAT_EVERY
        p.step()
        assert min(broker.takers().values()) == 1
    assert a.wanted != set(range(partition.BUCKETS))
    b.connected()
    for _ in range(3):  # b takes its share; a lets go of a bucket only once b holds it
        for p in (b, a):
            clock[0] += partition.BEAT_EVERY
            p.step()
            assert min(broker.takers().values()) >= 1
    assert set(broker.takers().values()) == {1}
    assert a.held and b.held and a.held | b.held == set(range(partition.BUCKETS))
    assert not a.held & b.held

    broker.kill("gw-b")  # SIGKILL: its subscriptions are gone, its row stays
    lost = [d for d, n in broker.takers().items() if n == 0]
    assert lost
    clock[0] += partition.DEAD_AFTER / 2
    a.step()
    assert [d for d, n in broker.takers().items() if n == 0] == lost  # b may just be slow
    clock[0] += partition.DEAD_AFTER
    a.step()
    a.step()
    assert set(broker.takers().values()) == {1}
    assert a.held == set(range(partition.BUCKETS))


def test_a_new_device_is_taken_by_its_buckets_owner(app, clock):
    broker = FakeBroker()
    a, b = broker.client(app, "gw-a"), broker.client(app, "gw-b")
    for _ in range(3):
        for p in (a, b):
            clock[0] += partition.BEAT_EVERY
            p.step()
    with db.transaction(app) as session:
        session.add(Device(id="hh-new", password_hash="x", bag_range_lo=1, bag_range_hi=9))
    for p in (a, b):
        p.step()
    bucket = partition.bucket_of("hh-new")
    taker = a if bucket in a.wanted else b
    assert [
        name for name, subs in broker.subscribed.items() if any("hh-new" in t for t in subs)
    ] == [taker.instance]
