"""The MQTT ingest: receive device messages, have them stored, acknowledge after the commit.

paho delivers messages on its network thread into an inbox; a forwarding thread sends them in
batches to the store process (gateway/ingest/writer.py), which validates, stores and commits
them. Only when the store answers a batch, after its commit, does this side publish each
device's cumulative acknowledgement and acknowledge the batch's MQTT messages (manual_ack), so
a crash of either process before the commit makes the broker and the device send them again.

Two processes because paho's network thread and the work of storing, in one interpreter,
share one lock: the gateway then reached about 0.6 of the rate a bare paho subscriber gets
from the same broker (docs/benchmarks.md, "Sync"). If the store process dies, a new one gets
every unanswered batch again; storing is idempotent (gateway/ingest/ledger.py).
"""

import logging
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from gateway import metrics
from gateway.ingest import mqtt_client, writer
from gateway.ingest.health import IngestState
from gateway.ingest.partition import Partition
from protocol import wire, wire_schema

log = logging.getLogger(__name__)

BATCH_MAX = writer.BATCH_MAX  # messages per batch sent to the store
BATCH_WAIT = 0.005  # seconds to wait for a batch to fill
STOP_WAIT = 10.0  # seconds the store gets to finish its batches when the gateway stops
_STOP = None  # in the inbox: no more messages; to the store: finish and exit
_RESTART = "restart"  # in the inbox: the store died, start another


_PUBACK = struct.Struct("!BBH")  # MQTT 3.1.1 section 3.4: type 4, remaining length 2, packet id


def puback(client: mqtt.Client, mids: list[int]) -> None:
    """Acknowledge QoS 1 messages received with manual_ack, all in one write.

    paho's ack() queues each PUBACK as a packet of its own: a wake-up byte for the network
    thread and a send() per message, which made the acknowledgements cost the gateway's MQTT
    side a sixth of its processor time at one record per message (docs/benchmarks.md). The
    PUBACKs of a batch go as one queued packet instead; _packet_queue is paho's (2.x) own
    path for every packet it sends, and tests/sync/test_puback.py checks against Mosquitto
    that the broker takes them.
    """
    if mids:
        packet = b"".join(_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids)
        client._packet_queue(mqtt.PUBACK, packet, 0, 0)


def _for_store(msg: mqtt.MQTTMessage) -> writer.Message:
    try:
        topic = msg.topic
    except UnicodeDecodeError:  # garbage the store counts and logs
        topic = None
    return topic, msg.payload


class Ingest:
    def __init__(
        self,
        url: str,
        client_id: str,
        share_group: str = "",
        state: IngestState | None = None,
        partition: Callable[["Ingest"], Partition] | None = None,
    ):
        """share_group: several instances take the messages (docs/deploy.md). With a
        partition (built for this ingest by the callable) each takes the events of its own
        devices (gateway/ingest/partition.py) and only statuses go to the shared group."""
        # The store process builds its own app from the same environment (BAGSCAN_*).
        self.url = urlsplit(url)
        self.share_group = share_group
        self.state = state
        # SimpleQueue: put() costs the network thread a fraction of Queue.put() (no Python
        # lock and condition per message).
        self._inbox: queue.SimpleQueue[mqtt.MQTTMessage | str | None] = queue.SimpleQueue()
        # Batches sent to the store and not answered yet, by batch id, oldest first.
        self._unanswered: dict[int, list[mqtt.MQTTMessage]] = {}
        self._next_id = 0
        self._lock = threading.Lock()  # _unanswered and _next_id
        self._stopping = threading.Event()
        # Only the forwarding thread starts stores and writes to them, and it never holds the
        # lock while it writes: the answers thread must always be free to read answers, or
        # a store waiting to write one would stop reading batches.
        self._store_ready = threading.Event()
        self._store: subprocess.Popen | None = None
        self._to_store: Connection | None = None
        self._from_store: Connection | None = None
        self._forwarder = threading.Thread(target=self._forward, name="ingest-forward")
        self._answers = threading.Thread(target=self._take_answers, name="ingest-answers")
        # Alone, we keep our queue at the broker while we restart. In a shared subscription a
        # persistent session of a dead instance would keep getting its share of the messages;
        # with a clean session the broker drops it from the group, and devices resend what it
        # never acknowledged (docs/deploy.md).
        self.client = mqtt_client.client(
            self.url, client_id, clean_session=bool(share_group), manual_ack=True
        )
        self.partition = partition(self) if partition else None
        # MQTT 3.1.1 has no receive maximum: the broker's max_inflight_messages must be 0
        # (deploy/mosquitto/bagscan.conf) or it stalls our batches (docs/deploy.md).
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        put = self._inbox.put
        self.client.on_message = lambda _c, _u, msg: put(msg)

    def start(self) -> None:
        self._start_store()
        if self.partition:
            self.partition.start()
        mqtt_client.start(self.client, self.url)
        self._forwarder.start()
        self._answers.start()

    def stop(self) -> None:
        """Stop taking messages, let the store answer what it has, then disconnect."""
        self._stopping.set()
        if self.partition:
            self.partition.stop()
        self._store_ready.set()  # an answers thread waiting for a new store looks again
        self._inbox.put(_STOP)
        self._forwarder.join(timeout=STOP_WAIT)
        store = self._store
        if store is not None:
            try:
                store.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:  # its unanswered batches come again
                store.terminate()
                store.wait()
        self._answers.join(timeout=STOP_WAIT)
        self.client.disconnect()
        self.client.loop_stop()

    def publish_config(self, device_id: str, payload: bytes) -> None:
        self.client.publish(wire.topic(device_id, wire.CONFIG), payload, qos=1, retain=True)

    def _topic(self, kind: str) -> str:
        return mqtt_client.devices_topic(kind, self.share_group)

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            if self.state:
                self.state.down(f"the broker refused the login ({reason_code})", lost=False)
            return
        log.info("ingest connected to %s", self.url.netloc.rpartition("@")[2])
        # Every time: a session the broker lost (or another client deleted) has none left.
        if self.partition:
            client.subscribe(self._topic(wire.STATUS), 1)
            self.partition.connected()
        else:
            client.subscribe([(self._topic(wire.EVENTS), 1), (self._topic(wire.STATUS), 1)])

    def subscribe(self, topics: list[str]) -> int | None:
        """Subscribe to topics in one packet; its mid, or None when not connected."""
        result, mid = self.client.subscribe([(topic, 1) for topic in topics])
        return mid if result == mqtt.MQTT_ERR_SUCCESS else None

    def unsubscribe(self, topics: list[str]) -> None:
        self.client.unsubscribe(topics)

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _props) -> None:
        if self.partition:
            self.partition.acknowledged(mid)
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:  # e.g. an ACL that does not give the gateway's account our topics
            log.error("MQTT subscription refused: %s", ", ".join(refused))
            if self.state:
                self.state.down("the broker refused the subscription", lost=False)
        elif self.state:
            self.state.up()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        if self.partition:
            self.partition.disconnected()
        if self._stopping.is_set():
            return
        # A broker that went away, or another client with our client id that took the session.
        log.error("ingest lost its MQTT connection (%s)", reason_code)
        if self.state:
            self.state.down("connection to the broker lost")

    # ---- the store process -------------------------------------------------------------

    def _start_store(self) -> None:
        """Start a store process and send it every unanswered batch, oldest first."""
        batches_in, batches_out = os.pipe()
        answers_in, answers_out = os.pipe()
        # A program of its own (ps shows `-m gateway.ingest.writer`) rather than a fork of
        # this process, which runs threads.
        store = subprocess.Popen(
            [sys.executable, "-m", "gateway.ingest.writer", str(batches_in), str(answers_out)],
            pass_fds=(batches_in, answers_out),
        )
        os.close(batches_in)
        os.close(answers_out)
        for old in (self._to_store, self._from_store):
            if old is not None:
                old.close()
        self._store = store
        self._to_store = Connection(batches_out, readable=False)
        self._from_store = Connection(answers_in, writable=False)
        self._store_ready.set()
        with self._lock:
            unanswered = list(self._unanswered.items())
        for batch_id, batch in unanswered:
            self._send_to_store((batch_id, [_for_store(m) for m in batch]))

    def _forward(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is _STOP:
                self._send_to_store(_STOP)
                return
            if batch is _RESTART:
                try:
                    self._start_store()
                except Exception:  # noqa: BLE001 - e.g. out of processes: try again
                    log.exception("could not start an ingest store process")
                    time.sleep(1.0)
                    self._inbox.put(_RESTART)
                continue
            metrics.MESSAGES_RECEIVED.inc(len(batch))
            with self._lock:
                batch_id = self._next_id
                self._next_id += 1
                self._unanswered[batch_id] = batch
            self._send_to_store((batch_id, [_for_store(m) for m in batch]))

    def _next_batch(self) -> list[mqtt.MQTTMessage] | str | None:
        """Messages for one batch, or a _STOP or _RESTART from the inbox."""
        first = self._inbox.get()
        if first is _STOP or first is _RESTART:
            return first
        # Sleep, then take what came: waking for each message as it arrives would make this
        # thread and paho's network thread hand the interpreter lock back and forth.
        time.sleep(BATCH_WAIT)
        batch = [first]
        while len(batch) < BATCH_MAX:
            try:
                msg = self._inbox.get_nowait()
            except queue.Empty:
                break
            if msg is _STOP or msg is _RESTART:
                self._inbox.put(msg)  # after this batch
                break
            batch.append(msg)
        return batch

    def _send_to_store(self, item) -> None:
        try:
            self._to_store.send(item)
        except OSError:  # the store died; its successor gets every unanswered batch
            pass

    def _take_answers(self) -> None:
        while True:
            try:
                batch_ids, acks = self._from_store.recv()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                code = self._store.poll() if self._store is not None else None
                log.error("ingest store process died (exit code %s); starting another", code)
                self._store_ready.clear()
                time.sleep(1.0)
                self._inbox.put(_RESTART)
                self._store_ready.wait()
                continue
            # Answers that wait are taken together: one ack per device for all of them.
            while self._from_store.poll(0):
                more_ids, more_acks = self._from_store.recv()
                batch_ids += more_ids
                for device_id, seq in more_acks.items():
                    acks[device_id] = max(seq, acks.get(device_id, 0))
            self._acknowledge(batch_ids, acks)

    def _acknowledge(self, batch_ids: list[int], acks: dict[str, int]) -> None:
        for device_id, seq in acks.items():
            self.client.publish(
                wire.topic(device_id, wire.ACK), wire_schema.ack_payload(seq), qos=1
            )
        with self._lock:
            # A batch sent twice (to a store that died, then to its successor) is answered
            # twice; only the first answer acknowledges it.
            batches = [self._unanswered.pop(i, None) for i in batch_ids]
        puback(self.client, [m.mid for batch in batches for m in batch or () if m.qos == 1])
        # paho stamps each message with time.monotonic() as it arrives.
        now = time.monotonic()
        observe = metrics.COMMIT_SECONDS.observe
        for batch in batches:
            for msg in batch or ():
                observe(now - msg.timestamp)
