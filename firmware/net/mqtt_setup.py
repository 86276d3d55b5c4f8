"""The MQTT client's once-per-boot code: settings, its state, the CONNECT packet, TLS.

net/mqtt.py imports this while it needs it and forgets it afterwards, so its bytecode is not
kept in the ~100 KB heap of an ESP32 (docs/mqtt-client.md, "Configuration").
"""

import asyncio

from micropython import const

from net.mqtt import _put_str, _put_varint, _varint_len

_CONNECT = const(0x10)  # fixed-header first byte (MQTT 3.1.1 §2.2)
_RX_BUF = const(256)  # preallocated receive buffer; bigger packets (up to max_packet) allocate

DEFAULTS = {
    "host": None,
    "port": None,  # None: 1883, or 8883 with tls
    "client_id": None,  # required: a persistent session is keyed by it
    "user": None,
    "password": None,
    "keepalive": 30,  # seconds; a link silent for 1.5x this is dead (§3.1.2.10). 0: off
    "tls": False,
    "ca": None,  # path of a PEM/DER CA file; None with tls: encrypted but unauthenticated
    "will": None,  # {"topic": str, "payload": bytes, "retain": bool, "qos": 0 | 1}
    "window": 8,  # QoS 1 messages in flight before publish() waits
    # Bytes of packet buffer each window slot gets at start (0: none until a publish needs
    # it). A slot keeps its buffer, so a device whose heap fragments while it runs reserves
    # its largest packet while the heap is still in one piece. Payloads written in place
    # (publish with a function) get this minus the header.
    "slot_bytes": 0,
    "backoff_min_ms": 500,
    "backoff_max_ms": 30000,
    "max_packet": 16384,  # larger incoming packets drop the connection
    # Path of a file that takes an incoming payload larger than the 256-byte receive buffer:
    # on_message then gets the file, open for reading, instead of bytes. None: such a
    # payload is read into a block of its size.
    "spool": None,
    "retry_ms": 10000,  # resend an unacknowledged QoS 1 message (DUP set) after this
    "timeout_ms": 10000,  # TCP/TLS connect plus CONNACK
}

# §3.2.2.3 CONNACK return codes 1..5, as the text a status screen can show.
_REFUSED = const(
    (
        "protocol version",
        "client id rejected",
        "server unavailable",
        "bad user name or password",
        "not authorised",
    )
)


def settings(config):
    """DEFAULTS overridden by config; ValueError names a bad or unknown setting."""
    cfg = dict(DEFAULTS)
    for key in config:
        if key not in DEFAULTS:
            raise ValueError("unknown MQTT setting: %s" % key)
    cfg.update(config)
    if not cfg["host"]:
        raise ValueError("MQTT setting host is required")
    if not cfg["client_id"]:
        raise ValueError("MQTT setting client_id is required")
    if cfg["port"] is None:
        cfg["port"] = 8883 if cfg["tls"] else 1883
    if not 0 <= cfg["keepalive"] <= 65535:
        raise ValueError("MQTT keepalive must be 0..65535 s")
    if not 1 <= cfg["window"] <= 1024:
        raise ValueError("MQTT window must be 1..1024")
    if cfg["backoff_min_ms"] < 1 or cfg["backoff_max_ms"] < cfg["backoff_min_ms"]:
        raise ValueError("MQTT backoff_min_ms must be >= 1 and <= backoff_max_ms")
    return cfg


def init(c, config):
    """MQTTClient.__init__: check config, encode CONNECT, set up the client c's state."""
    cfg = settings(config)
    c._connect_pkt = connect_packet(cfg)
    for key in ("client_id", "user", "password", "will"):
        del cfg[key]  # in the CONNECT packet, which is kept; nothing else reads them
    window = cfg["window"]
    c._cfg = cfg
    c._ssl = None
    c.connected = False
    c.last_error = None
    c._pkt = [None] * window
    # Each slot keeps its buffer for the next message, grown to the largest packet: a
    # backlog drains without a new block as large as a batch for every message.
    c._buf = [None] * window
    if cfg["slot_bytes"]:
        for i in range(window):
            c._buf[i] = bytearray(cfg["slot_bytes"])
    c._pid = [0] * window
    c._tkt = [0] * window
    c._ep = [0] * window
    c._at = [0] * window
    c._ticket = 0
    c._last_pid = 0

    c._subs = []
    c._acks = []
    c._ackbuf = bytearray(b"\x40\x02\x00\x00")
    c._rmv = memoryview(bytearray(_RX_BUF))
    c._rx = c._rmv
    c._rlen = 0
    c._spooled = -1

    c._kick = asyncio.Event()
    c._freed = asyncio.Event()
    c._task = None
    c._stream = None
    c._reader = None
    c._sender = None
    c._epoch = 0
    c._stop = False
    c._bye = False
    c._ping = False
    c._why = None
    keepalive_ms = cfg["keepalive"] * 1000
    shortest = min(keepalive_ms, cfg["retry_ms"]) if keepalive_ms else cfg["retry_ms"]
    c._tick = max(20, min(1000, shortest // 4))


async def disconnect(c):
    """MQTTClient.disconnect."""
    task = c._task
    c._task = None
    c._stop = True
    if task is None:
        return
    if c.connected:
        c._bye = True
        c._kick.set()
        try:
            await asyncio.wait_for_ms(task, c._cfg["timeout_ms"])
        except Exception:
            pass  # timed out, and the wait cancelled the task
    else:
        task.cancel()


def acked_upto(c):
    """MQTTClient.acked_upto."""
    low = c._ticket
    for i in range(len(c._pkt)):
        if c._pkt[i] is not None and c._tkt[i] <= low:
            low = c._tkt[i] - 1
    return low


async def flush(c, ticket):
    """MQTTClient.flush."""
    if ticket is None:
        ticket = c._ticket
    while True:
        c._freed.clear()
        if acked_upto(c) >= ticket:
            return
        await c._freed.wait()


def subscribe(c, topic, qos):
    """MQTTClient.subscribe: kept in c._subs, sent by the sender (now and on reconnects)."""
    if qos != 0 and qos != 1:
        raise ValueError("MQTT qos must be 0 or 1")
    t = topic.encode() if isinstance(topic, str) else bytes(topic)
    for sub in c._subs:
        if sub[0] == t:
            sub[1] = qos
            sub[2] = 0
            break
    else:
        c._subs.append([t, qos, 0, 0])
    c._kick.set()


def refusal(code):
    """The text for a CONNACK return code."""
    if 1 <= code <= len(_REFUSED):
        return "refused: " + _REFUSED[code - 1]
    return "refused: code %d" % code


def tls_context(ca):
    """A client context: verifying the broker against the CA file at path ca, or (None) not
    at all."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        with open(ca, "rb") as f:
            ca = f.read()
        if ca.startswith(b"-----BEGIN"):
            # MicroPython's mbedTLS binding takes DER only: the first certificate is the
            # base64 between the BEGIN and END lines (RFC 7468).
            import binascii

            body = []
            for line in ca.split(b"\n")[1:]:
                if line.startswith(b"-----END"):
                    break
                body.append(line.strip())
            ca = binascii.a2b_base64(b"".join(body))
        ctx.load_verify_locations(cadata=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _as_bytes(v):
    return v.encode() if isinstance(v, str) else bytes(v)


def connect_packet(cfg):
    # §3.1: clean session 0, so the broker keeps our subscriptions and queued messages.
    cid = _as_bytes(cfg["client_id"])
    n = 10 + 2 + len(cid)
    flags = 0
    fields = [cid]
    will = cfg["will"]
    if will:
        qos = will.get("qos", 0)
        if qos != 0 and qos != 1:
            raise ValueError("MQTT will qos must be 0 or 1")
        flags |= 0x04 | qos << 3 | (0x20 if will.get("retain") else 0)
        fields.append(_as_bytes(will["topic"]))
        fields.append(_as_bytes(will.get("payload", b"")))
    if cfg["user"] is not None:
        flags |= 0x80
        fields.append(_as_bytes(cfg["user"]))
    if cfg["password"] is not None:
        if cfg["user"] is None:
            raise ValueError("MQTT password needs a user (§3.1.2.9)")
        flags |= 0x40
        fields.append(_as_bytes(cfg["password"]))
    for f in fields[1:]:
        n += 2 + len(f)
    pkt = bytearray(1 + _varint_len(n) + n)
    pkt[0] = _CONNECT
    p = _put_str(pkt, _put_varint(pkt, 1, n), b"MQTT")
    keepalive = cfg["keepalive"]
    pkt[p] = 4  # protocol level 4 = 3.1.1
    pkt[p + 1] = flags
    pkt[p + 2] = keepalive >> 8
    pkt[p + 3] = keepalive & 0xFF
    p += 4
    for f in fields:
        p = _put_str(pkt, p, f)
    return pkt
