# Drains the journal to the gateway over MQTT and applies what the gateway sends back
# (docs/protocol.md). A record leaves the journal only on the gateway's acknowledgement,
# which it sends after its database commit; the MQTT PUBACK alone proves nothing.
import asyncio
import gc
import json
import time

from micropython import const

import lazy
from app import clock
from protocol import wire

_AHEAD_RECORDS = const(3000)  # published but not yet acknowledged by the gateway
_ACK_TIMEOUT_MS = const(15000)  # no acknowledgement progress this long: send again from the gap
_STATUS_EVERY_MS = const(60000)
_IDLE_WAIT_MS = const(500)
# A parcel request unanswered this long is answered offline (unknown_parcel, "unchecked"):
# the gateway answers within 300 ms at p99 (issue 16, docs/benchmarks.md), and the scan waits.
_REPLY_WAIT_MS = const(1000)


class Sync:
    def __init__(self, client, journal, handheld, firmware_version, board):
        self.client = client
        self.journal = journal
        self.handheld = handheld
        self.firmware_version = firmware_version
        self.board = board
        device_id = handheld.settings["device_id"]
        self.events_topic = wire.topic(device_id, wire.EVENTS)
        self.status_topic = wire.topic(device_id, wire.STATUS)
        self.ack_topic = wire.topic(device_id, wire.ACK)
        self.config_topic = wire.topic(device_id, wire.CONFIG)
        self.sent = journal.acked  # highest seq published to the gateway
        self._last = 0  # the last seq of the batch being published
        self._progress_at = time.ticks_ms()
        self._wake = asyncio.Event()
        self._status_due = True
        # The handlers are named as the attributes that hold them: names interned anyway,
        # where private ones would be three more kept for good (docs/firmware.md).
        client.on_message = self.on_message
        client.on_state = self.on_state
        handheld.on_record = self.on_record
        # The parcel request waiting for its answer: (tracking number, its Event), and the
        # answer. "waiting" and "value": names the runtime has interned already.
        self.waiting = None
        self.value = False

    async def run(self):
        self.client.subscribe(self.ack_topic, 1)
        self.client.subscribe(self.config_topic, 1)
        self.client.subscribe(wire.topic(self.handheld.settings["device_id"], wire.PARCEL), 0)
        self.client.start()
        status_at = time.ticks_ms()
        while True:
            try:
                status_at = await self._step(status_at)
            except Exception as e:  # noqa: BLE001 - scanning must go on whatever the link does
                # MemoryError included: drop what this round built, collect, try again later.
                print("sync: round failed:", repr(e))
                gc.collect()
                await asyncio.sleep_ms(_IDLE_WAIT_MS)

    async def _step(self, status_at):
        """One round of the drain; returns when the status was last published."""
        now = time.ticks_ms()
        j = self.journal
        if self.client.connected and (
            self._status_due or time.ticks_diff(now, status_at) > _STATUS_EVERY_MS
        ):
            self._status_due = False
            status_at = now
            status = {
                "v": wire.VERSION,
                "online": True,
                "fw": self.firmware_version,
                "battery_mv": self.board.battery_mv(),
                "backlog": j.depth,
                "wall": clock.wall(),
                # boot, ticks and synced let the gateway date this boot's unsynced records
                "boot": self.handheld.boot,
                "t": clock.ticks(),
                "q": int(clock.synced),
                # the config version taken, when, and the parcel index's size (app/config.py),
                # for the devices page
                "s": self.handheld.settings.get("s", 0),
                "time": self.handheld.settings.get("time", 0),
                "n": self.handheld.settings.get("n", 0),
            }
            await self.client.publish(self.status_topic, json.dumps(status).encode(), 1, True)
        if (
            self.client.connected
            and self.sent < j.last_seq
            and self.sent - j.acked < _AHEAD_RECORDS
        ):
            await self._send_batch()
            return status_at
        if self.sent > j.acked and time.ticks_diff(now, self._progress_at) > _ACK_TIMEOUT_MS:
            # The gateway did not confirm in time (lost message, gateway restart): resend.
            self.sent = j.acked
            self._progress_at = now
            return status_at
        self._wake.clear()
        try:
            await asyncio.wait_for_ms(self._wake.wait(), _IDLE_WAIT_MS)
        except asyncio.TimeoutError:
            pass
        return status_at

    async def _send_batch(self):
        j = self.journal
        if self.sent < j.acked:
            self.sent = j.acked
        if self.sent == j.acked:
            self._progress_at = time.ticks_ms()
        if await self.client.publish(self.events_topic, self._batch, 1):
            self.sent = self._last
        else:  # nothing readable after sent (a bad frame): nothing to wait for either
            self.sent = j.last_seq

    def _batch(self, buf):
        """Write the events message of the records after sent into buf (the MQTT client's
        slot, sized for app/boot.py's _BATCH_BYTES of records); its length."""
        start = len(wire.EVENTS_OPEN)
        close = len(wire.EVENTS_CLOSE)
        buf[:start] = wire.EVENTS_OPEN
        end, self._last = self.journal.read_into(self.sent, buf[: len(buf) - close], start)
        if end == start:
            return 0
        buf[end : end + close] = wire.EVENTS_CLOSE
        return end + close

    async def request(self, trk, function):
        """Ask the gateway about parcel trk, which the cache lacks, then call function(trk,
        facts): facts the entry of its answer ([status, hub, seller, big]), None when the
        gateway does not know the parcel either, False without an answer (offline, or none
        within _REPLY_WAIT_MS). The scanner task awaits it: the next scan waits."""
        self.value = False
        if self.client.connected:
            done = asyncio.Event()
            self.waiting = (trk, done)
            topic = wire.topic(self.handheld.settings["device_id"], wire.REQUEST)
            try:
                # Bounded too: a QoS 1 message holds the window's slot until its PUBACK, which
                # never comes if the link dropped unnoticed, and the scan would wait for it.
                await asyncio.wait_for_ms(
                    self.client.publish(topic, trk.encode(), 0), _REPLY_WAIT_MS
                )
                await asyncio.wait_for_ms(done.wait(), _REPLY_WAIT_MS)
            except asyncio.TimeoutError:
                pass
            self.waiting = None
        return function(trk, self.value)

    def state(self):
        """What the simulator's control channel reports: the workflow's state and the link."""
        st = self.handheld.state()
        st["connected"] = self.client.connected
        s = self.handheld.settings  # the config version, when it came, the parcel index's size
        st["config"] = {"s": s.get("s", 0), "time": s.get("time", 0), "n": s.get("n", 0)}
        return st

    def on_record(self):
        # Offline, the connection's on_state wakes the drain: a wake-up per scan would only
        # allocate a new wait in the heap that scanning fragments.
        if self.client.connected:
            self._wake.set()

    def on_state(self, connected):
        # Offline a parcel the cache lacks is answered at once, with no coroutine per scan:
        # 1,200 of them fragmented the heap so that a config no longer loaded at 100 KB.
        self.handheld.request = self.request if connected else None
        if connected:
            self._status_due = True
        self._wake.set()

    def on_message(self, topic, payload, retained):
        if topic == self.config_topic:
            # bytes, or (over 256 bytes) the file the MQTT client spooled it to; app/config.py
            # checks the version, sets the clock and applies it. The status then tells the
            # gateway which version the handheld has (a gap: where to resend from).
            if self.handheld.apply_config(payload, retained, self.waiting):
                self._status_due = True
                self._wake.set()
            return
        if topic != self.ack_topic and (not isinstance(payload, bytes) or payload[:1] != b"{"):
            # Not JSON: a firmware update's message (protocol/ota.py), its code loaded for it.
            lazy.call("app.boot", "on_message", self, payload)
            return
        if not isinstance(payload, bytes):
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            print("sync: ignored a message that is not JSON")
            return
        if topic != self.ack_topic:  # the third subscription: an answer to request()
            waiting = self.waiting
            answer = msg.get("parcels") if isinstance(msg, dict) else None
            if waiting is not None and isinstance(answer, dict) and waiting[0] in answer:
                facts = answer[waiting[0]]
                self.value = facts if isinstance(facts, list) and len(facts) == 4 else None
                waiting[1].set()
            return
        if wire.ack_error(msg):
            return
        j = self.journal
        seq = min(msg["s"], j.last_seq)
        if seq > j.acked:
            j.ack(seq)
            self._progress_at = time.ticks_ms()
            self._wake.set()
