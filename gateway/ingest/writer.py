"""The ingest's store process: validate device messages, store them in batches, commit, apply.

gateway/ingest/subscriber.py holds the MQTT connection and sends this process batches of (topic,
payload) over a pipe; here every message is validated, the valid records of all waiting
batches are stored in one transaction, and each batch is answered with the acknowledgements
per device only after the commit. The MQTT side sends nothing for a batch before its answer,
so a crash here before the commit makes the broker and the device send it again. Garbage is
logged and counted, never stored and never fatal. Stored records are applied to the bag
registry in each device's order right behind the acknowledgements, by the applier's thread
(gateway/ingest/applier.py).

A process of its own, so that storing does not share one interpreter lock with paho's network
thread: with both in one process the gateway reached about 0.6 of the rate a bare paho
subscriber gets from the same broker (docs/benchmarks.md, "Sync").
"""

import logging
import os
import signal
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection

from flask import Flask
from sqlalchemy.exc import OperationalError

from gateway import clock, create_app, db, logs, metrics
from gateway.ingest.applier import Applier
from gateway.ingest.ledger import Ledger
from gateway.services import devices
from protocol import wire, wire_schema

log = logging.getLogger("gateway.ingest.writer")  # also when run as __main__

BATCH_MAX = 1000  # messages per transaction, from however many waiting batches
RETRY_WAIT = 1.0  # seconds between attempts when the database is unavailable
STATS_EVERY = 60.0  # seconds between counter log lines
PARENT_CHECK = 0.2  # seconds without a batch between looks whether the MQTT side lives
SWITCH_INTERVAL = 0.001  # seconds
TOPICS_KEPT = 20_000  # parsed topics remembered (two per device: events and status)
_POISON = object()

# One message as the MQTT side sends it: the topic (None if it is not UTF-8) and the payload.
Message = tuple[str | None, bytes]


class Orphaned(Exception):
    """The MQTT side is gone: nothing will be acknowledged, so stop storing."""


def main(batches: Connection, answers: Connection) -> None:
    """The process's entry point: `python -m gateway.ingest.writer <batches fd> <answers fd>`,
    started by gateway/ingest/subscriber.py."""
    logs.setup()
    # Ctrl-C reaches the whole process group; the MQTT side stops us in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # On SQLite the applier is a thread of this process (gateway/ingest/applier.py): storing
    # waits for the interpreter lock each time a query returns while that thread runs
    # Python, at most this long instead of the default 5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL)
    Store(create_app(), os.getppid()).serve(batches, answers)


class Store:
    def __init__(self, app: Flask, parent_pid: int):
        self.app = app
        self.parent_pid = parent_pid
        self.stats: Counter[str] = Counter()
        self.ledger = Ledger()
        self.applier = Applier(app)
        # Valid topics seen, parsed: a fleet has a few thousand, each sends many messages.
        self._topics: dict[str, tuple[str, str]] = {}
        self._refused_by = ""  # why the database refused the last batch it refused

    def serve(self, batches: Connection, answers: Connection) -> None:
        """Answer batches (batch id, messages) with (batch ids, acks per device) until told
        to stop (None) or the MQTT side is gone."""
        self.applier.start()
        logged_at = time.monotonic()
        try:
            while True:
                if batches.poll(PARENT_CHECK):
                    ids, messages, last = self._take(batches)
                    if ids:
                        answers.send((ids, self.process(messages)))
                    if last:
                        return
                else:
                    self._check_parent()
                if time.monotonic() - logged_at > STATS_EVERY:
                    logged_at = time.monotonic()
                    log.info("ingest counters: %s", dict(self.stats))
        except (EOFError, BrokenPipeError, Orphaned):
            log.info("ingest process gone; store process stops")
        finally:
            self.applier.stop()

    def _take(self, batches: Connection) -> tuple[list[int], list[Message], bool]:
        """Every batch waiting in the pipe, up to BATCH_MAX messages: under load one
        transaction stores many small batches. The last item tells whether to stop."""
        ids: list[int] = []
        messages: list[Message] = []
        while True:
            item = batches.recv()
            if item is None:
                return ids, messages, True
            ids.append(item[0])
            messages.extend(item[1])
            if len(messages) >= BATCH_MAX or not batches.poll(0):
                return ids, messages, False

    def process(self, messages: list[Message]) -> dict[str, int]:
        """Store the valid messages; the acknowledgement per device, after the commit."""
        decoded = [(msg, self._decode(msg)) for msg in messages]
        acks = self._commit([d for _, d in decoded if d is not None])
        if acks is _POISON:
            # Valid by the wire rules, yet the database refuses the batch for a reason other
            # than being away: store message by message and reject the one that fails.
            acks = {}
            for msg, parsed in decoded:
                if parsed is None:
                    continue
                one = self._commit([parsed])
                if one is not _POISON:
                    acks.update(one)
                elif parsed[1] == wire.EVENTS:
                    acks.update(self._store_each(parsed[0], parsed[2]["r"]))
                else:
                    self._reject(msg, "not_storable", "valid but not storable (see above)")
        self.stats["messages"] += len(messages)
        return {device_id: seq for device_id, seq in acks.items() if seq}

    def _store_each(self, device_id: str, records: list[dict]) -> dict[str, int]:
        """The records of a message the database refused, one transaction each: the record
        that fails is quarantined (ledger.quarantine), so the device goes on."""
        acks: dict[str, int] = {}
        for rec in records:
            one = self._commit([(device_id, wire.EVENTS, {"v": wire.VERSION, "r": [rec]})])
            if one is _POISON:
                one = self._quarantine(device_id, rec)
            acks.update(one)
        return acks

    def _quarantine(self, device_id: str, rec: dict) -> dict[str, int]:
        while True:
            try:
                with self.applier.turns.storing(), db.transaction(self.app) as session:
                    ack = self.ledger.quarantine(
                        session, device_id, rec, self._refused_by, clock.now()
                    )
                self.stats["quarantined"] += 1
                metrics.RECORDS_QUARANTINED.inc(self.ledger.newly_quarantined())
                return {device_id: ack}
            except OperationalError:
                self.ledger.forget()
                log.exception("database unavailable; retrying")
                time.sleep(RETRY_WAIT)
                self._check_parent()
            except Exception:  # noqa: BLE001 - never stop the worker; the device resends
                self.ledger.forget()
                log.exception(
                    "record %s/%s not even quarantined",
                    device_id,
                    rec.get("s"),
                    extra=logs.about(device_id, rec.get("s")),
                )
                return {}

    def _decode(self, msg: Message) -> tuple[str, str, dict] | None:
        """The device, kind and body of a valid message; None (logged, counted) otherwise.

        The topic names the device; the broker's ACL (gateway/ingest/acl.py) lets only that
        device's login publish there, so the topic is the authenticated device.
        """
        topic, payload = msg
        if topic is None:
            return self._reject(msg, "topic", "topic is not UTF-8")
        parsed = self._topics.get(topic) or wire_schema.parse_topic(topic)
        if parsed is None or parsed[1] not in (wire.EVENTS, wire.STATUS):
            return self._reject(msg, "topic", "topic is not a device's events or status")
        if topic not in self._topics:
            if len(self._topics) >= TOPICS_KEPT:
                self._topics.clear()
            self._topics[topic] = parsed
        if len(payload) > wire.MAX_MESSAGE:
            return self._reject(msg, "too_large", f"payload over {wire.MAX_MESSAGE} bytes")
        try:
            # Decode first: json.loads(bytes) would also accept UTF-16 and UTF-32. NaN and
            # Infinity are not JSON (wire_schema.decode).
            body = wire_schema.decode(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return self._reject(msg, "not_json", "payload is not UTF-8 JSON")
        try:
            if parsed[1] == wire.EVENTS:
                err = wire_schema.events_error(body)
            else:
                err = devices.status_error(body)
        except Exception as exc:  # noqa: BLE001 - a validator bug must not stop the worker
            err = f"validator failed: {type(exc).__name__}"
        if err:
            return self._reject(msg, "invalid", err)
        return parsed[0], parsed[1], body

    def _reject(self, msg: Message, reason: str, why: str) -> None:
        """Count (by reason: a short fixed word, the label of the metric) and log `why`."""
        self.stats["rejected"] += 1
        metrics.MESSAGES_REJECTED.labels(reason).inc()
        n = self.stats["rejected"]
        # Garbage may come by the thousand: log the first ones, then every thousandth.
        if n <= 20 or n % 1000 == 0:
            topic = (msg[0] or "?")[:80]
            parsed = self._topics.get(topic) or wire_schema.parse_topic(topic)
            device_id = parsed[0] if parsed else None
            log.warning(
                "rejected message #%d on %r: %s", n, topic, why, extra=logs.about(device_id)
            )
        return None

    def _commit(self, messages: list[tuple[str, str, dict]]) -> dict[str, int] | object:
        """Store decoded messages in one transaction, retrying while the database is away.

        Returns the acks per device, or _POISON when the batch failed for another reason
        (a bug, or a value the database cannot take).
        """
        records: dict[str, list[dict]] = {}
        statuses: dict[str, dict] = {}
        for device_id, kind, body in messages:
            if kind == wire.EVENTS:
                records.setdefault(device_id, []).extend(body["r"])
            else:
                statuses[device_id] = body
        count = sum(len(r) for r in records.values())
        while True:
            now = clock.now()
            try:
                with self.applier.turns.storing(), db.transaction(self.app) as session:
                    acks = self.ledger.store(session, records, statuses, now)
                self.applier.behind(records, count)
                self.stats["records"] += count
                metrics.RECORDS_RECEIVED.inc(count)
                metrics.RECORDS_STORED.inc(self.ledger.last_stored)
                return acks
            except OperationalError:
                self.ledger.forget()
                log.exception("database unavailable; retrying")
                time.sleep(RETRY_WAIT)
                self._check_parent()
            except Exception as exc:  # noqa: BLE001 - isolate the message, never stop the worker
                self.ledger.forget()
                log.exception("batch of %d messages not storable", len(messages))
                self._refused_by = f"{type(exc).__name__}: {exc}"
                return _POISON

    def _check_parent(self) -> None:
        """A SIGKILLed MQTT side leaves us orphaned (re-parented): stop rather than retry
        or apply forever. The next instance's store process takes over."""
        if os.getppid() != self.parent_pid:
            raise Orphaned


if __name__ == "__main__":
    main(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
