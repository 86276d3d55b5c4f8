# Drains the journal to the gateway over MQTT and applies what the gateway sends back
# (docs/protocol.md). A record leaves the journal only on the gateway's acknowledgement,
# which it sends after its database commit; the MQTT PUBACK alone proves nothing.
import asyncio
import gc
import json
import time

from micropython import const

from app import clock, wire

_AHEAD_RECORDS = const(3000)  # published but not yet acknowledged by the gateway
_ACK_TIMEOUT_MS = const(15000)  # no acknowledgement progress this long: send again from the gap
_STATUS_EVERY_MS = const(60000)
_IDLE_WAIT_MS = const(500)


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
        client.on_message = self._on_message
        client.on_state = self._on_state
        handheld.on_record = self._on_record

    async def run(self):
        self.client.subscribe(self.ack_topic, 1)
        self.client.subscribe(self.config_topic, 1)
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

    def state(self):
        """What the simulator's control channel reports: the workflow's state and the link."""
        st = self.handheld.state()
        st["connected"] = self.client.connected
        return st

    def _on_record(self):
        # Offline, the connection's on_state wakes the drain: a wake-up per scan would only
        # allocate a new wait in the heap that scanning fragments.
        if self.client.connected:
            self._wake.set()

    def _on_state(self, connected):
        if connected:
            self._status_due = True
        self._wake.set()

    def _on_message(self, topic, payload, retained):
        if topic == self.config_topic:
            # bytes, or (over 256 bytes) the file the MQTT client spooled it to; app/config.py
            # checks the version, sets the clock and applies it.
            self.handheld.apply_config(payload)
            return
        if topic != self.ack_topic or not isinstance(payload, bytes):
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            print("sync: ignored an ack that is not JSON")
            return
        if wire.ack_error(msg):
            return
        j = self.journal
        seq = min(msg["s"], j.last_seq)
        if seq > j.acked:
            j.ack(seq)
            self._progress_at = time.ticks_ms()
            self._wake.set()
