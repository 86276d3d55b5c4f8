"""The MQTT ingest worker: validate, store in batches, commit, then acknowledge.

paho delivers messages on its network thread into a queue; one worker thread takes them in
batches, stores every valid record in one transaction, and only after the commit publishes each
device's cumulative acknowledgement and acknowledges the MQTT messages (manual_ack), so a crash
before the commit makes the broker and the device send them again. Garbage is logged and
counted, never stored and never fatal.
"""

import json
import logging
import queue
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from firmware.app import wire
from gateway import db, devices, ledger

log = logging.getLogger(__name__)

BATCH_MAX = 500  # messages per transaction
BATCH_WAIT = 0.05  # seconds to wait for a batch to fill
RETRY_WAIT = 1.0  # seconds between attempts when the database is unavailable


class Ingest:
    def __init__(self, app: Flask, url: str, client_id: str, share_group: str = ""):
        self.app = app
        self.url = urlsplit(url)
        self.share_group = share_group
        self.stats: Counter[str] = Counter()
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="ingest", daemon=True)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,  # keep our queue at the broker while we restart
            manual_ack=True,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if self.url.username:
            self.client.username_pw_set(self.url.username, self.url.password)
        if self.url.scheme == "mqtts":
            self.client.tls_set()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self._inbox.put(msg)
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

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + BATCH_WAIT
            while len(batch) < BATCH_MAX:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(self._inbox.get(timeout=timeout))
                except queue.Empty:
                    break
            self._process(batch)

    def _process(self, batch: list[mqtt.MQTTMessage]) -> None:
        records: dict[str, list[dict]] = {}
        statuses: dict[str, dict] = {}
        for msg in batch:
            parsed = self._decode(msg)
            if parsed is None:
                continue
            device_id, kind, body = parsed
            if kind == wire.EVENTS:
                records.setdefault(device_id, []).extend(body["r"])
            else:
                statuses[device_id] = body
        acks = self._commit(records, statuses)
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
        parsed = wire.parse_topic(msg.topic)
        if parsed is None or parsed[1] not in (wire.EVENTS, wire.STATUS):
            return self._reject(msg, "topic is not a device's events or status")
        if len(msg.payload) > wire.MAX_MESSAGE:
            return self._reject(msg, f"payload over {wire.MAX_MESSAGE} bytes")
        try:
            body = json.loads(msg.payload)
        except (UnicodeDecodeError, ValueError):
            return self._reject(msg, "payload is not UTF-8 JSON")
        if parsed[1] == wire.EVENTS:
            err = wire.events_error(body)
        else:
            err = devices.status_error(body)
        if err:
            return self._reject(msg, err)
        return parsed[0], parsed[1], body

    def _reject(self, msg: mqtt.MQTTMessage, why: str) -> None:
        self.stats["rejected"] += 1
        n = self.stats["rejected"]
        # Garbage may come by the thousand: log the first ones, then every thousandth.
        if n <= 20 or n % 1000 == 0:
            log.warning("rejected message #%d on %r: %s", n, msg.topic[:80], why)
        return None

    def _commit(
        self, records: dict[str, list[dict]], statuses: dict[str, dict]
    ) -> dict[str, int] | None:
        """Store everything in one transaction, retrying while the database is away."""
        now = datetime.now(UTC)
        while True:
            try:
                acks = {}
                with db.transaction(self.app) as session:
                    # Devices in a fixed order, so concurrent gateways lock rows without deadlock.
                    for device_id in sorted(records):
                        recs = sorted(records[device_id], key=lambda r: r["s"])
                        acks[device_id] = ledger.store(session, device_id, recs, now)
                    for device_id, status in statuses.items():
                        devices.record_status(session, device_id, status, now)
                self.stats["records"] += sum(len(r) for r in records.values())
                return acks
            except SQLAlchemyError:
                log.exception("database write failed; retrying")
                if self._stop.wait(RETRY_WAIT):
                    return None
