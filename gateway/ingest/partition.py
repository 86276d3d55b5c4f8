"""Which gateway instance takes which devices' events: the devices split among live instances.

With several instances on one broker, a shared subscription ($share/...) hands a device's
consecutive messages to different instances; each then locks the device row in turn and
waits for the others' commits (issue 20: median publish -> ack 1 s with two instances). Here
instead every device's events go to one instance at a time:

- a device belongs to one of BUCKETS buckets (a CRC-32 of its id: the same in every process
  and on every host);
- each instance beats in the table ingest_members (one row per instance); one whose beat has
  not moved for DEAD_AFTER seconds is dead. Liveness is judged by each observer's own
  monotonic clock, so the hosts' clocks need not agree;
- a bucket's owner among the live instances is chosen by rendezvous hashing, so when an
  instance comes or goes only its own buckets move;
- an instance subscribes to the events topic of every device in the buckets it owns (plain
  topics, bagscan/v1/dev/<id>/events: no wildcard can select a hash, and the handhelds'
  topics stay as they are) and lists a bucket in its row once the broker has acknowledged
  those subscriptions. An instance that gives a bucket away unsubscribes only after the new
  owner lists it: a handover overlaps instead of leaving a gap.

Correctness does not depend on any of this. While two instances hold a bucket both store its
messages, and the ledger's device lock and unique (device, seq) keep every record once; a
message published while nobody holds its bucket (the seconds after an instance dies) is
dropped by the broker and sent again by the device, which keeps every record in its journal
until the acknowledgement. The partition only keeps instances from waiting on each other.
"""

import hashlib
import logging
import queue
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway import db
from gateway.models import Device, IngestMember
from protocol import wire

log = logging.getLogger(__name__)

# More buckets than instances will ever be, so that each instance's share is even to a few
# percent; a bucket is the unit that moves.
BUCKETS = 64
BEAT_EVERY = 1.0  # seconds between beats (and looks at the device table)
# A member whose beat has not moved this long is dead: its buckets move to the others, which
# hold them after another beat and the broker's SUBACK (issue 20: within 10 s).
DEAD_AFTER = 5.0
FORGET_AFTER = 60.0  # a dead member's row is deleted after this long
# Topic filters per SUBSCRIBE packet, by bytes: Mosquitto refuses any packet larger than its
# max_packet_size (17000 in deploy/mosquitto/bagscan.conf) and drops the connection.
PACKET_BYTES = 8000

# What the MQTT side gives the partition: subscribe(topics) -> the packet's mid (None when
# not connected), and unsubscribe(topics).
Subscribe = Callable[[list[str]], int | None]
Unsubscribe = Callable[[list[str]], None]


def bucket_of(device_id: str) -> int:
    return zlib.crc32(device_id.encode()) % BUCKETS


def owner(bucket: int, members: Iterable[str]) -> str:
    """Rendezvous hashing: the member that scores highest for the bucket."""
    return max(
        members,
        key=lambda m: hashlib.blake2b(f"{m}/{bucket}".encode(), digest_size=8).digest(),
    )


def instance_name(config: Mapping[str, Any]) -> str:
    """This instance's name (BAGSCAN_INSTANCE, by default the host's name)."""
    return config.get("INSTANCE") or socket.gethostname()


def held_by(session: Session, instance: str) -> set[int]:
    """The buckets an instance holds, as it last beat."""
    held = session.scalar(select(IngestMember.held).where(IngestMember.instance == instance))
    return set(held or ())


def packets(topics: list[str]) -> Iterable[list[str]]:
    """The topics in groups that each fit one SUBSCRIBE packet under PACKET_BYTES."""
    group: list[str] = []
    size = 0
    for topic in topics:
        need = len(topic.encode()) + 3  # length prefix and QoS byte
        if group and size + need > PACKET_BYTES:
            yield group
            group, size = [], 0
        group.append(topic)
        size += need
    if group:
        yield group


class Partition:
    """One instance's part: beats, follows the members, (un)subscribes its devices' events.

    The MQTT side reports its connection and SUBACKs with connected(), disconnected() and
    acknowledged() (from paho's network thread); all state is kept by the partition's thread.
    """

    def __init__(self, app: Flask, instance: str, subscribe: Subscribe, unsubscribe: Unsubscribe):
        self.app = app
        self.instance = instance
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._events: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-partition", daemon=True)
        self._connected = False
        self._beat = 0
        self._seen: dict[str, tuple[int, float]] = {}  # member -> (beat, when it last moved)
        # Devices whose events topic is subscribed (or asked for), by bucket.
        self._subscribed: dict[int, set[str]] = {}
        self._waiting: dict[int, set[int]] = {}  # SUBSCRIBE mid -> its buckets
        self.wanted: frozenset[int] = frozenset()  # the buckets this instance owns
        self.held: frozenset[int] = frozenset()  # ... of which the broker acknowledged all

    # ---- from the MQTT side ------------------------------------------------------------

    def connected(self) -> None:
        self._events.put(("connected", 0))
        self._wake.set()  # subscribe now, not at the next beat

    def disconnected(self) -> None:
        self._events.put(("disconnected", 0))

    def acknowledged(self, mid: int) -> None:
        self._events.put(("suback", mid))

    # ---- running -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Leave at once: the others take this instance's buckets on their next beat, while
        it still holds them and finishes what it has."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=5)
        try:
            with db.transaction(self.app) as session:
                session.execute(delete(IngestMember).where(IngestMember.instance == self.instance))
        except Exception:  # noqa: BLE001 - the others see the beat stop instead
            log.exception("could not leave the ingest partition")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - e.g. the database is away: beat again
                log.exception("ingest partition step failed")
            self._wake.wait(BEAT_EVERY)
            self._wake.clear()

    def _take_events(self) -> None:
        while True:
            try:
                kind, mid = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "suback":
                self._waiting.pop(mid, None)
            else:
                # A clean session: whatever was subscribed went with the old connection.
                self._connected = kind == "connected"
                self._subscribed.clear()
                self._waiting.clear()
        self._count_held()

    def step(self) -> None:
        """One beat: publish ours, read the members and devices, move subscriptions."""
        self._take_events()
        now = time.monotonic()
        with db.transaction(self.app) as session:
            rows = {m.instance: m for m in session.scalars(select(IngestMember))}
            devices: dict[int, set[str]] = {}
            for device_id in session.scalars(select(Device.id)):
                devices.setdefault(bucket_of(device_id), set()).add(device_id)
            live = {self.instance}
            for name, row in rows.items():
                if name == self.instance:
                    continue
                beat, moved_at = self._seen.get(name, (None, now))
                if beat != row.beat:
                    moved_at = now
                self._seen[name] = (row.beat, moved_at)
                if now - moved_at < DEAD_AFTER:
                    live.add(name)
                elif now - moved_at > FORGET_AFTER:
                    session.execute(
                        delete(IngestMember).where(
                            IngestMember.instance == name, IngestMember.beat == row.beat
                        )
                    )
                elif row.held:
                    # The broker dropped a dead instance's subscriptions with its connection:
                    # the table shows that it holds nothing (unless it beats again meanwhile).
                    session.execute(
                        update(IngestMember)
                        .where(IngestMember.instance == name, IngestMember.beat == row.beat)
                        .values(held=[])
                    )
            for gone in set(self._seen) - set(rows):
                del self._seen[gone]
            wanted = frozenset(b for b in range(BUCKETS) if owner(b, live) == self.instance)
            if wanted != self.wanted:
                log.info(
                    "ingest partition: %s takes %d of %d device buckets (instances: %s)",
                    self.instance,
                    len(wanted),
                    BUCKETS,
                    ", ".join(sorted(live)),
                )
            self.wanted = wanted
            if self._connected:
                holders = {name: set(rows[name].held or ()) for name in live if name in rows}
                self._move(devices, live, holders)
            own = rows.get(self.instance)
            if own is None:
                own = IngestMember(instance=self.instance, beat=0, held=[])
                session.add(own)
            self._beat = max(self._beat, own.beat or 0) + 1
            own.beat = self._beat
            own.held = sorted(self.held)

    def _move(
        self, devices: dict[int, set[str]], live: set[str], holders: dict[str, set[int]]
    ) -> None:
        """Subscribe to the devices of wanted buckets; give up buckets their owner holds."""
        for bucket in sorted(self.wanted):
            want = devices.get(bucket, set())
            have = self._subscribed.setdefault(bucket, set())
            new, gone = sorted(want - have), sorted(have - want)
            if gone:  # devices deleted
                self._drop(gone)
                have.difference_update(gone)
            if new:
                for group in packets([wire.topic(d, wire.EVENTS) for d in new]):
                    mid = self._subscribe(group)
                    if mid is None:  # the connection went: connected() starts over
                        return
                    self._waiting[mid] = {bucket}
                have.update(new)
        for bucket in sorted(set(self._subscribed) - self.wanted):
            if bucket in holders.get(owner(bucket, live), ()):
                self._drop(sorted(self._subscribed.pop(bucket)))
        self._count_held()

    def _count_held(self) -> None:
        """Held: subscribed buckets none of whose SUBSCRIBE packets awaits its SUBACK."""
        waiting = set().union(*self._waiting.values())
        self.held = frozenset(b for b in self._subscribed if b not in waiting)

    def _drop(self, device_ids: list[str]) -> None:
        for group in packets([wire.topic(d, wire.EVENTS) for d in device_ids]):
            self._unsubscribe(group)
