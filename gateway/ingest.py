"""The MQTT ingest worker: validate, store in batches, commit, then acknowledge.

paho delivers messages on its network thread into a queue; one worker thread takes them in
batches, stores every valid record in one transaction, and only after the commit publishes each
device's cumulative acknowledgement and acknowledges the MQTT messages (manual_ack), so a crash
before the commit makes the broker and the device send them again. Garbage is logged and
counted, never stored and never fatal. Stored records are applied to the bag registry in each
device's order (gateway/ledger.py): in the same transaction for a small batch, right behind
the acknowledgements while a backlog drains.
"""

import json
import logging
import queue
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from flask import Flask
from sqlalchemy.exc import OperationalError

from firmware.app import wire, wire_schema
from gateway import db, devices
from gateway.ledger import Ledger

log = logging.getLogger(__name__)

BATCH_MAX = 1000  # messages per transaction
BATCH_WAIT = 0.005  # seconds to wait for a batch to fill
# Applying to the bag registry costs about 80 us a record in runs (bench/registry_apply.py),
# still more than storing it; the acknowledgement must not wait for it under load, so
# applying gets time slices.
INLINE_APPLY = 0.005  # seconds of applying before the commit and the ack (a small batch fits)
APPLY_BUSY = 0.010  # seconds of applying between batches while messages keep coming
APPLY_IDLE = 0.020  # seconds per applying transaction when the inbox is empty (then look again)
RETRY_WAIT = 1.0  # seconds between attempts when the database is unavailable
STATS_EVERY = 60.0  # seconds between counter log lines
_POISON = object()


def _no_delay(_client, _userdata, sock) -> None:
    """Send small packets at once. With Nagle's algorithm an ack published right after another
    small write waits for the broker's delayed TCP ACK: 40 ms on Linux, the median latency
    before this was set (docs/benchmarks.md)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a websocket wrapper)
        pass


class Ingest:
    def __init__(self, app: Flask, url: str, client_id: str, share_group: str = ""):
        self.app = app
        self.url = urlsplit(url)
        self.share_group = share_group
        self.stats: Counter[str] = Counter()
        self.ledger = Ledger()
        # SimpleQueue: put() costs the network thread a fraction of Queue.put() (no Python
        # lock and condition per message).
        self._inbox: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._lagging: set[str] = set()
        self._worker = threading.Thread(target=self._run, name="ingest", daemon=True)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            # Alone, we keep our queue at the broker while we restart. In a shared
            # subscription a persistent session of a dead instance would keep getting its
            # share of the messages; with a clean session the broker drops it from the
            # group, and devices resend what it never acknowledged (docs/deploy.md).
            clean_session=bool(share_group),
            manual_ack=True,
        )
        # MQTT 3.1.1 has no receive maximum: the broker's max_inflight_messages must be 0
        # (deploy/mosquitto/bagscan.conf) or it stalls our batches (docs/deploy.md).
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if self.url.username:
            self.client.username_pw_set(
                unquote(self.url.username), unquote(self.url.password or "")
            )
        if self.url.scheme == "mqtts":
            self.client.tls_set()
        self.client.on_connect = self._on_connect
        self.client.on_socket_open = _no_delay
        put = self._inbox.put
        self.client.on_message = lambda _c, _u, msg: put(msg)
        self.client.reconnect_delay_set(1, 30)

    def start(self) -> None:
        default_port = 8883 if self.url.scheme == "mqtts" else 1883
        self.client.connect_async(self.url.hostname or "127.0.0.1", self.url.port or default_port)
        self.client.loop_start()
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()

    def publish_config(self, device_id: str, payload: bytes) -> None:
        self.client.publish(wire.topic(device_id, wire.CONFIG), payload, qos=1, retain=True)

    def _topic(self, kind: str) -> str:
        name = wire.topic("+", kind)
        return f"$share/{self.share_group}/{name}" if self.share_group else name

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        log.info("ingest connected to %s", self.url.netloc.rpartition("@")[2])
        client.subscribe([(self._topic(wire.EVENTS), 1), (self._topic(wire.STATUS), 1)])

    # ---- the worker -------------------------------------------------------------------

    def _run(self) -> None:
        self._find_lagging()
        logged_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the worker must outlive any bug
                log.exception("ingest step failed; retrying")
                self._stop.wait(RETRY_WAIT)
            if time.monotonic() - logged_at > STATS_EVERY:
                logged_at = time.monotonic()
                log.info("ingest counters: %s", dict(self.stats))

    def _step(self) -> None:
        try:
            first = self._inbox.get(timeout=0.2 if not self._lagging else 0)
        except queue.Empty:
            if self._lagging:
                self._apply(APPLY_IDLE)
            return
        batch = [first]
        deadline = time.monotonic() + BATCH_WAIT
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self._inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=timeout))
            except queue.Empty:
                break
        self._process(batch)
        if self._lagging:
            self._apply(APPLY_BUSY)

    def _process(self, batch: list[mqtt.MQTTMessage]) -> None:
        decoded = [(msg, self._decode(msg)) for msg in batch]
        acks = self._commit([d for _, d in decoded if d is not None])
        if acks is _POISON:
            # Valid by the wire rules, yet the database refuses the batch for a reason other
            # than being away: store message by message and reject the one that fails.
            acks = {}
            for msg, parsed in decoded:
                if parsed is None:
                    continue
                one = self._commit([parsed])
                if one is _POISON:
                    self._reject(msg, "valid but not storable (see the traceback above)")
                elif one is None:
                    return
                else:
                    acks.update(one)
        if acks is None:  # stopping before the commit: the broker will deliver them again
            return
        for device_id, seq in acks.items():
            if seq:
                self.client.publish(wire.topic(device_id, wire.ACK), wire.ack_payload(seq), qos=1)
        for msg in batch:
            if msg.qos:
                self.client.ack(msg.mid, msg.qos)
        self.stats["messages"] += len(batch)

    def _decode(self, msg: mqtt.MQTTMessage) -> tuple[str, str, dict] | None:
        """The device, kind and body of a valid message; None (logged, counted) otherwise.

        The topic names the device; the broker's ACL (gateway/acl.py) lets only that
        device's login publish there, so the topic is the authenticated device.
        """
        try:
            parsed = wire_schema.parse_topic(msg.topic)
        except Exception:  # noqa: BLE001 - a topic paho cannot decode is garbage too
            return self._reject(msg, "topic is not UTF-8")
        if parsed is None or parsed[1] not in (wire.EVENTS, wire.STATUS):
            return self._reject(msg, "topic is not a device's events or status")
        if len(msg.payload) > wire.MAX_MESSAGE:
            return self._reject(msg, f"payload over {wire.MAX_MESSAGE} bytes")
        try:
            # Decode first: json.loads(bytes) would also accept UTF-16 and UTF-32.
            body = json.loads(msg.payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return self._reject(msg, "payload is not UTF-8 JSON")
        try:
            if parsed[1] == wire.EVENTS:
                err = wire_schema.events_error(body)
            else:
                err = devices.status_error(body)
        except Exception as exc:  # noqa: BLE001 - a validator bug must not stop the worker
            err = f"validator failed: {type(exc).__name__}"
        if err:
            return self._reject(msg, err)
        return parsed[0], parsed[1], body

    def _reject(self, msg: mqtt.MQTTMessage, why: str) -> None:
        self.stats["rejected"] += 1
        n = self.stats["rejected"]
        # Garbage may come by the thousand: log the first ones, then every thousandth.
        if n <= 20 or n % 1000 == 0:
            try:
                topic = msg.topic[:80]
            except Exception:  # noqa: BLE001
                topic = "?"
            log.warning("rejected message #%d on %r: %s", n, topic, why)
        return None

    def _commit(self, messages: list[tuple[str, str, dict]]) -> dict[str, int] | None | object:
        """Store decoded messages in one transaction, retrying while the database is away.

        Returns the acks per device; None when stopping; _POISON when the batch failed for
        another reason (a bug, or a value the database cannot take).
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
            now = datetime.now(UTC)
            try:
                with db.transaction(self.app) as session:
                    acks = self.ledger.store(session, records, statuses, now)
                    behind = set(records) | self._lagging
                    if not self._lagging:
                        self.ledger.apply(session, behind, until=time.monotonic() + INLINE_APPLY)
                        behind = self._still_behind(session, behind)
                self._lagging |= behind
                self.stats["records"] += count
                return acks
            except OperationalError:
                self.ledger.forget()
                log.exception("database unavailable; retrying")
                if self._stop.wait(RETRY_WAIT):
                    return None
            except Exception:  # noqa: BLE001 - isolate the message, never stop the worker
                self.ledger.forget()
                log.exception("batch of %d messages not storable", len(messages))
                return _POISON

    def _apply(self, seconds: float) -> None:
        try:
            with db.transaction(self.app) as session:
                self.ledger.apply(session, self._lagging, until=time.monotonic() + seconds)
                self._lagging = self._still_behind(session, self._lagging)
        except Exception:  # noqa: BLE001 - retried on the next round
            log.exception("applying records failed; retrying")
            self._stop.wait(RETRY_WAIT)

    def _still_behind(self, session, device_ids: set[str]) -> set[str]:
        return set(self.ledger.lagging(session, device_ids)) if device_ids else set()

    def _find_lagging(self) -> None:
        try:
            with db.transaction(self.app) as session:
                self._lagging = set(self.ledger.lagging(session))
        except Exception:  # noqa: BLE001
            log.exception("could not look for unapplied records")
