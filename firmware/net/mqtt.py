"""Asyncio MQTT 3.1.1 client that rides out bad networks: QoS 0/1, persistent session, reconnects forever."""

# Design (see docs/mqtt-client.md): the app only ever waits on events, never on the socket.
# Per connection one reader task parses packets and one sender task owns all writes; the
# supervising task (started by start()) pings, times out a dead link by cancelling both
# and closing the socket, then reconnects with backoff. QoS 1 messages live in a fixed
# window of slots, as complete encoded packets, until PUBACKed, so resending is a write.

import asyncio
import random
import sys
import time

from micropython import const

import lazy

# Fixed-header first bytes (MQTT 3.1.1 §2.2).
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)  # §3.8.1: reserved flag bits are 0010
_SUBACK = const(0x90)
_PINGRESP = const(0xD0)
_DUP = const(0x08)  # §3.3.1.1
_RETAIN = const(0x01)

_MAX_PID = const(65535)  # §2.3.1: 16-bit, non-zero
_MAX_OWED_ACKS = const(32)  # the reader waits when this many PUBACKs are not yet written
_STABLE_MS = const(10000)  # a link that stayed up this long resets the backoff
_VARINT_MAX_BYTES = const(4)  # §2.2.3

_PINGREQ_PKT = const(b"\xc0\x00")
_DISCONNECT_PKT = const(b"\xe0\x00")
# A packet the broker should not have sent (type, flags or length), named by its first
# byte: one text for all, as every distinct text is a string kept in the heap.
_BAD = const("broker sent a bad packet 0x%02x")
# Settings check, CONNECT packet, TLS context, CONNACK texts: loaded only while they run.
_SETUP = const("net.mqtt_setup")


class MQTTError(Exception):
    """The broker refused us or broke the protocol; the link is dropped and retried."""


class MQTTClient:
    # The state, set up by net/mqtt_setup.py init(). Bare annotations compile to nothing.
    connected: bool
    last_error: str | None  # why the last attempt failed or the last link dropped
    _cfg: dict  # mqtt_setup.DEFAULTS as set, less what only CONNECT needs
    _connect_pkt: bytes
    _ssl: object
    # The in-flight window: slot i holds an encoded PUBLISH (_pkt, a view of the slot's
    # buffer _buf, kept and grown to the largest packet) until PUBACK (QoS 1) or until
    # written (QoS 0). Parallel lists, so a slot update allocates nothing.
    _pkt: list
    _buf: list
    _pid: list  # packet id; 0 marks QoS 0
    _tkt: list  # ticket, also the send order
    _ep: list  # link epoch of the last send; 0: never sent
    _at: list  # ticks_ms of the last send
    _ticket: int  # last ticket handed out
    _last_pid: int
    _subs: list  # [topic bytes, qos, epoch sent on, pid awaiting SUBACK or 0]
    _acks: list  # pids of incoming QoS 1 messages still to PUBACK
    _ackbuf: bytearray
    _rmv: memoryview  # the preallocated receive buffer
    _rx: memoryview  # body of the packet just read
    _rlen: int
    _spooled: int  # payload bytes the PUBLISH just read left in the spool file; -1: none
    _kick: asyncio.Event  # the sender has work
    _freed: asyncio.Event  # a window slot was freed
    _task: asyncio.Task | None
    _stream: asyncio.StreamReader | None  # reader and writer in one on MicroPython
    _reader: asyncio.Task | None
    _sender: asyncio.Task | None
    _epoch: int
    _stop: bool
    _bye: bool
    _ping: bool
    _why: str | None
    _tick: int  # ms between the supervisor's checks

    def __init__(self, config, on_message=None, on_state=None):
        # Checking the settings, encoding CONNECT and setting up the state run once: that
        # code lives in net/mqtt_setup.py, loaded for the call and dropped again (the heap is
        # ~100 KB). The attributes it sets are listed there.
        lazy.call(_SETUP, "init", self, config)
        self._last_rx = self._last_tx = self._last_ping = 0  # ticks_ms(): in, out, PINGREQ
        self.on_message = on_message  # (topic: str, payload: bytes, retained: bool) -> None
        self.on_state = on_state  # (connected: bool) -> None

    # ---- public API -------------------------------------------------------------

    def start(self):
        """Start keeping the connection up (forever, until disconnect()); returns the task."""
        if self._task is None:
            self._stop = self._bye = False
            self._task = asyncio.create_task(self._run())
        return self._task

    # disconnect, acked_upto, flush and subscribe run once per boot at most on the handheld
    # (subscribe at start, the others never): their code is net/mqtt_setup.py's, loaded for
    # the call, not kept in the ~100 KB heap. Subscriptions renewed on a reconnect are not
    # (_send_round): a reconnect must not need a block the size of mqtt_setup.

    async def disconnect(self):
        """Say goodbye (the broker then drops the will) and stop reconnecting."""
        await lazy.call(_SETUP, "disconnect", self)

    async def publish(self, topic, payload, qos=1, retain=False):
        """Queue a message; returns once it holds a window slot, not when it is acked.

        QoS 1: waits while the window is full, then returns its ticket (an int that grows
        by publish order, never reused); the message is kept and resent until PUBACKed,
        across reconnects. QoS 0: returns 0; dropped when not connected.
        payload: bytes-like, or a function that writes the payload straight into the slot's
        buffer (slot_bytes minus the header) it is given and returns its length; 0 there
        publishes nothing and returns 0.
        """
        if qos != 0 and qos != 1:
            raise ValueError("MQTT qos must be 0 or 1")
        t = topic.encode() if isinstance(topic, str) else bytes(topic)
        # §4.7.3: no wildcards, not empty. The broker would drop us for it, and a QoS 1
        # message is resent forever, so refuse it here.
        if not t or b"+" in t or b"#" in t:
            raise ValueError("MQTT publish topic must be non-empty and wildcard-free")
        if qos == 0 and not self.connected:
            return 0
        i = -1
        while i < 0:  # wait for a free slot
            self._freed.clear()
            for j in range(len(self._pkt)):
                if self._pkt[j] is None:
                    i = j
                    break
            else:
                await self._freed.wait()
        if qos == 0 and not self.connected:
            return 0
        # The payload goes in after room for the longest header; the header is then written
        # just before it, so a payload written in place is never copied.
        at = 1 + _VARINT_MAX_BYTES + 2 + len(t) + 2 * qos
        buf = self._buf[i]
        if callable(payload):
            if buf is None:
                buf = self._buf[i] = bytearray(self._cfg["slot_bytes"])
            size: int = payload(memoryview(buf)[at:])  # pyright: ignore[reportAssignmentType]
            if not size:
                return 0
        else:
            size = len(payload)
            if buf is None or len(buf) < at + size:
                buf = self._buf[i] = bytearray(at + size)
            buf[at : at + size] = payload
        n = 2 + len(t) + 2 * qos + size
        pkt = memoryview(buf)[at + size - n - 1 - _varint_len(n) : at + size]
        pkt[0] = _PUBLISH | (qos << 1) | (_RETAIN if retain else 0)
        p = _put_str(pkt, _put_varint(pkt, 1, n), t)
        pid = 0
        if qos:
            pid = self._next_pid()
            pkt[p] = pid >> 8
            pkt[p + 1] = pid & 0xFF
        self._ticket += 1
        self._pkt[i] = pkt
        self._pid[i] = pid
        self._tkt[i] = self._ticket
        self._ep[i] = 0
        self._kick.set()
        return self._ticket if qos else 0

    @property
    def acked_upto(self):
        """Every QoS 1 message with a ticket <= this has been PUBACKed."""
        return lazy.call(_SETUP, "acked_upto", self)

    async def flush(self, ticket=None):
        """Wait until the message with this ticket and all before it are PUBACKed.

        Default: everything published so far. Waits across reconnects; never times out
        by itself (wrap it in asyncio.wait_for_ms to bound it).
        """
        await lazy.call(_SETUP, "flush", self, ticket)

    def subscribe(self, topic, qos=1):
        """Subscribe now if connected and again on every reconnect; qos 0 or 1."""
        lazy.call(_SETUP, "subscribe", self, topic, qos)

    # ---- connection keeping -----------------------------------------------------

    async def _run(self):
        cfg = self._cfg
        delay = cfg["backoff_min_ms"]
        try:
            while not self._stop:
                try:
                    await asyncio.wait_for_ms(self._handshake(), cfg["timeout_ms"])
                except Exception as e:
                    await self._close_stream()
                    self.last_error = _describe(e)
                else:
                    up = time.ticks_ms()
                    await self._online()
                    if time.ticks_diff(time.ticks_ms(), up) >= _STABLE_MS:
                        delay = cfg["backoff_min_ms"]
                if self._stop:
                    break
                # Equal jitter: half the delay fixed, half random, so a fleet rebooted by the
                # same power cut does not reconnect in lockstep.
                half = delay // 2
                await asyncio.sleep_ms(half + random.getrandbits(24) % (half + 1))
                delay = min(delay * 2, cfg["backoff_max_ms"])
        finally:  # also when disconnect() cancels us mid-handshake
            await self._close_stream()

    async def _handshake(self):
        cfg = self._cfg
        if cfg["tls"]:
            if self._ssl is None:
                self._ssl = lazy.call(_SETUP, "tls_context", cfg["ca"])
            s, _ = await asyncio.open_connection(
                cfg["host"], cfg["port"], ssl=self._ssl, server_hostname=cfg["host"]
            )
        else:
            s, _ = await asyncio.open_connection(cfg["host"], cfg["port"])
        self._stream = s
        self._last_rx = time.ticks_ms()
        await self._write(s, self._connect_pkt)
        if await self._read_packet(s) != _CONNACK or self._rlen != 2:
            raise MQTTError("expected CONNACK")
        code = self._rx[1]
        if code:
            raise MQTTError(lazy.call(_SETUP, "refusal", code))

    async def _online(self):
        self._epoch += 1
        epoch = self._epoch
        now = time.ticks_ms()
        self._last_rx = self._last_tx = self._last_ping = now
        self._ping = False
        self._why = None
        s = self._stream
        self._reader = asyncio.create_task(self._read_loop(s))
        self._sender = asyncio.create_task(self._send_loop(s, epoch))
        self._kick.set()
        self.connected = True
        self.last_error = None
        if self.on_state is not None:
            try:
                self.on_state(True)
            except Exception as e:
                sys.print_exception(e)
        why = "stopped"
        try:
            why = await self._supervise(epoch)
        finally:
            for task in (self._reader, self._sender):
                if not task.done():
                    task.cancel()
            self._reader = self._sender = None
            await self._close_stream()
            self.connected = False
            self.last_error = why
            for i in range(len(self._pkt)):
                if self._pid[i] == 0:  # QoS 0 not yet written: at most once means dropped
                    self._pkt[i] = None
            self._acks = []  # the broker resends unacknowledged messages on reconnect
            for sub in self._subs:
                sub[3] = 0
            self._freed.set()
            if self.on_state is not None:
                try:
                    self.on_state(False)
                except Exception as e:
                    sys.print_exception(e)

    async def _supervise(self, epoch):
        keepalive_ms = self._cfg["keepalive"] * 1000
        half = keepalive_ms // 2
        sender = self._sender
        reader = self._reader
        if sender is None or reader is None:
            return "not connected"
        while True:
            await asyncio.sleep_ms(self._tick)
            if sender.done():
                return self._why or "send failed"
            if reader.done():
                return self._why or "receive failed"
            now = time.ticks_ms()
            if keepalive_ms:
                quiet = time.ticks_diff(now, self._last_rx)
                if quiet > keepalive_ms + half:
                    return "dead link: broker silent for %d ms" % quiet
                # Ping when either direction has been idle for half the keepalive: the
                # broker needs to hear from us within keepalive, and we need to hear
                # from it to tell a live link from a dead one.
                if (
                    quiet >= half or time.ticks_diff(now, self._last_tx) >= half
                ) and time.ticks_diff(now, self._last_ping) >= half:
                    self._last_ping = now
                    self._ping = True
                    self._kick.set()
            if self._due(epoch, now) >= 0:
                self._kick.set()

    async def _close_stream(self):
        s = self._stream
        self._stream = None
        if s is not None:
            try:
                # MicroPython's Stream is reader and writer in one (the stubs type it as
                # CPython's StreamReader, which has no close).
                s.close()  # pyright: ignore[reportAttributeAccessIssue]
                await s.wait_closed()  # pyright: ignore[reportAttributeAccessIssue]
            except Exception:
                pass

    # ---- sending (only the sender task writes once a link is up) ---------------

    async def _write(self, s, buf):
        s.write(buf)
        await s.drain()
        self._last_tx = time.ticks_ms()

    async def _send_loop(self, s, epoch):
        try:
            while True:
                await self._kick.wait()
                self._kick.clear()
                if await self._send_round(s, epoch):
                    return
        except Exception as e:
            self._why = self._why or _describe(e)  # the first cause is the real one

    async def _send_round(self, s, epoch):
        if self._bye:
            await self._write(s, _DISCONNECT_PKT)
            self._why = self._why or "disconnected by the app"
            return True
        for sub in self._subs:
            if sub[2] != epoch:
                sub[2] = epoch
                sub[3] = self._next_pid()
                # §3.8: packet id, then one topic filter and its QoS.
                topic = sub[0]
                n = 2 + 2 + len(topic) + 1
                pkt = bytearray(1 + _varint_len(n) + n)
                pkt[0] = _SUBSCRIBE
                p = _put_varint(pkt, 1, n)
                pkt[p] = sub[3] >> 8
                pkt[p + 1] = sub[3] & 0xFF
                p = _put_str(pkt, p + 2, topic)
                pkt[p] = sub[1]
                await self._write(s, pkt)
        while self._acks:
            pid = self._acks.pop(0)
            self._ackbuf[2] = pid >> 8
            self._ackbuf[3] = pid & 0xFF
            await self._write(s, self._ackbuf)
        if self._ping:
            self._ping = False
            await self._write(s, _PINGREQ_PKT)
        # At most one window's worth per round, so PUBACKs and pings are not starved.
        for _ in range(len(self._pkt)):
            i = self._due(epoch, time.ticks_ms())
            if i < 0:
                return False
            pkt = self._pkt[i]
            if self._pid[i]:
                if self._ep[i]:
                    pkt[0] |= _DUP  # §3.3.1.1: a resend, same packet id
                self._ep[i] = epoch
                self._at[i] = time.ticks_ms()
            else:
                self._pkt[i] = None
                self._freed.set()
            await self._write(s, pkt)
        self._kick.set()
        return False

    def _due(self, epoch, now):
        """Slot to send next: not yet sent on this link, or unacked for retry_ms."""
        best = -1
        retry = self._cfg["retry_ms"]
        for i in range(len(self._pkt)):
            if self._pkt[i] is None:
                continue
            if self._ep[i] == epoch and time.ticks_diff(now, self._at[i]) < retry:
                continue
            if best < 0 or self._tkt[i] < self._tkt[best]:
                best = i
        return best

    def _next_pid(self):
        # §2.3.1: a new packet id must not be in use; 65535 wraps to 1, 0 is invalid.
        pid = self._last_pid
        while True:
            pid = pid + 1 if pid < _MAX_PID else 1
            free = True
            for i in range(len(self._pkt)):
                if self._pid[i] == pid and self._pkt[i] is not None:
                    free = False
            for sub in self._subs:
                if sub[3] == pid:
                    free = False
            if free:
                self._last_pid = pid
                return pid

    # ---- receiving (only the reader task reads once a link is up) --------------

    async def _read_loop(self, s):
        try:
            while True:
                first = await self._read_packet(s)
                kind = first & 0xF0
                d = self._rx
                n = self._rlen
                if kind == _PUBACK:
                    if n != 2:
                        raise MQTTError(_BAD % first)
                    pid = d[0] << 8 | d[1]
                    for i in range(len(self._pkt)):
                        if pid and self._pid[i] == pid and self._pkt[i] is not None:
                            self._pkt[i] = None
                            self._freed.set()
                            break
                elif kind == _PUBLISH:
                    qos = (first >> 1) & 3
                    if qos > 1:
                        raise MQTTError(_BAD % first)  # QoS 2 is not supported
                    end = 2 + (d[0] << 8 | d[1])
                    if end + 2 * qos > n:
                        raise MQTTError(_BAD % first)
                    topic = str(d[2:end], "utf-8")
                    pid = 0
                    if qos:
                        pid = d[end] << 8 | d[end + 1]
                        end += 2
                    spooled = self._spooled >= 0
                    payload = open(self._cfg["spool"], "rb") if spooled else bytes(d[end:n])
                    try:
                        if self.on_message is not None:
                            self.on_message(topic, payload, bool(first & _RETAIN))
                    except Exception as e:
                        sys.print_exception(e)
                    finally:
                        if spooled:
                            payload.close()  # pyright: ignore[reportAttributeAccessIssue]
                    if qos:
                        # PUBACK after the callback: at least once, as the broker intends.
                        while len(self._acks) >= _MAX_OWED_ACKS:
                            await asyncio.sleep_ms(10)
                        self._acks.append(pid)
                        self._kick.set()
                elif kind == _PINGRESP:
                    pass
                elif kind == _SUBACK:
                    if n < 3:
                        raise MQTTError(_BAD % first)
                    pid = d[0] << 8 | d[1]
                    for sub in self._subs:
                        if sub[3] == pid:
                            sub[3] = 0
                            if d[2] == 0x80:  # §3.9.3: failure
                                self.last_error = "subscribe refused: %s" % sub[0].decode()
                else:
                    raise MQTTError(_BAD % first)
        except Exception as e:
            self._why = self._why or _describe(e)  # the first cause is the real one

    async def _read_packet(self, s):
        """Read one packet; returns its first byte, leaves the body in _rx[:_rlen]."""
        mv = self._rmv
        await _fill(s, mv, 2)
        first = mv[0]
        byte = mv[1]
        n = byte & 0x7F
        shift = 7
        count = 1
        while byte & 0x80:
            if count == _VARINT_MAX_BYTES:
                raise MQTTError("malformed remaining length")
            await _fill(s, mv, 1)
            byte = mv[0]
            n |= (byte & 0x7F) << shift
            shift += 7
            count += 1
        if n > self._cfg["max_packet"]:
            raise MQTTError("incoming packet of %d bytes exceeds max_packet" % n)
        self._spooled = -1
        body = mv
        if n <= len(mv):
            await _fill(s, mv, n)
        elif first & 0xF0 != _PUBLISH or not self._cfg["spool"]:
            body = memoryview(bytearray(n))
            await _fill(s, body, n)
        else:
            # A PUBLISH larger than the receive buffer: its topic and packet id stay in mv,
            # its payload goes to the spool file a buffer at a time, so a message of up to
            # max_packet needs no block of its size. n: the bytes left in mv.
            await _fill(s, mv, 2)
            head = 2 + (mv[0] << 8 | mv[1]) + (2 if first & 0x06 else 0)  # §3.3.2: id, QoS>0
            if head > n or head >= len(mv):
                raise MQTTError(_BAD % first)
            await _fill(s, mv[2:], head - 2)
            chunk = mv[head:]
            left = n - head
            # A spool that cannot be written (a full flash) must not drop the link: the broker
            # would resend a retained message at every reconnect. The rest of the payload is
            # then read and dropped, and on_message gets b"".
            try:
                f = open(self._cfg["spool"], "wb")
            except OSError:
                f = None
            try:
                while left:
                    k = min(left, len(chunk))
                    await _fill(s, chunk, k)
                    left -= k
                    if f is None:
                        continue
                    try:
                        f.write(chunk[:k])
                        if not left:
                            f.close()  # on LittleFS the data is committed here
                            f = None
                            self._spooled = n - head
                    except OSError:  # a full flash: the rest is read and dropped
                        try:
                            f.close()  # pyright: ignore[reportOptionalMemberAccess] - set here
                        except OSError:
                            pass
                        f = None
            finally:
                if f is not None:  # the link failed midway
                    f.close()
            n = head
        self._rx = body
        self._rlen = n
        self._last_rx = time.ticks_ms()
        return first


async def _fill(s, mv, n):
    got = 0
    while got < n:
        k = await s.readinto(mv[got:n])
        if k is None:  # TLS record not complete yet
            continue
        if not k:
            raise OSError("connection closed by broker")
        got += k


def _describe(e):
    if isinstance(e, asyncio.TimeoutError):
        return "no CONNACK within timeout_ms"
    text = str(e)
    return text if isinstance(e, MQTTError) else "%s: %s" % (type(e).__name__, text)


def _varint_len(n):
    return 1 if n < 0x80 else 2 if n < 0x4000 else 3 if n < 0x200000 else 4


def _put_varint(buf, p, n):
    # §2.2.3 remaining length: 7 bits per byte, least significant first.
    while True:
        byte = n & 0x7F
        n >>= 7
        buf[p] = byte | 0x80 if n else byte
        p += 1
        if not n:
            return p


def _put_str(buf, p, b):
    # §1.5.3: two-byte big-endian length, then the bytes.
    buf[p] = len(b) >> 8
    buf[p + 1] = len(b) & 0xFF
    buf[p + 2 : p + 2 + len(b)] = b
    return p + 2 + len(b)
