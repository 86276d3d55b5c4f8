# Start-up, once per boot: the settings, the boot counter, the journal, the workflow, the
# MQTT client and the sync. app/main.py loads this for the call (lazy.call), so its code
# leaves the ~100 KB heap once the device runs. It also holds the handheld's side of a
# firmware update (below), which decides what boots next.
import asyncio
import binascii
import gc
import hashlib
import io
import json
import os
import sys

import vfs
from micropython import const

from app import clock, flashfile
from app.flashfile import read_or, remove_if_exists, write_atomic
from protocol import wire
from app.journal import Journal
from app.sync import Sync
from app.ui import Ui
from app.workflow import Handheld
from net.mqtt import MQTTClient

# Journal payload per events message (wire.MAX_MESSAGE allows 16 KB): about 20 records, and
# at least the largest record (journal _MAX_PAYLOAD). The journal reads a batch straight
# into the MQTT client's packet buffer, kept for the whole boot: a backlog drains with no
# large block allocated in a heap fragmented by scanning.
_BATCH_BYTES = const(2048)
# One batch in flight: each slot holds a packet buffer of a full batch for the whole boot.
_WINDOW = const(1)

# Firmware updates over the air (below, docs/ota.md): constants, before any code uses them
# (a const() is folded only after its definition).
_OFFER = const(0x55)
_CHUNK = const(0x43)
_CONFIRM = const(0x4B)
_CHUNK_HEAD = const(13)
_PIECE = const(256)  # bytes read or written at a time: the only buffer an update needs
_KEY_BYTES = const(256)  # RSA-2048
_SHA256_INFO = const(
    b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"
)
_REPORT_MS = const(300)  # the switch's report has this long to leave before the reset
# A trial not confirmed this long after its boot resets (at a moment nothing is under way),
# so one that runs but never reaches the gateway is rolled back too, after its 3 boots.
_TRIAL_WAIT_MS = const(300000)
_TRIAL_POLL_MS = const(5000)
# Files under the code's root (main.py's folder; "" on the ESP32).
_STAGE_JSON = const("ota/stage.json")  # the offer being fetched
_STAGE_BIN = const("ota/stage.bin")  # the release fetched so far
_TRIAL = const("ota/trial.slot")  # main.py boots this slot on trial
_BOOTS = const("ota/trial.boots")  # one byte a boot on trial (main.py)
_ACTIVE = const("ota/active.slot")  # main.py boots this slot, confirmed
_FAILED = const("ota/failed.slot")  # the slot main.py dropped from trial
# A slot is a checked release file: its two header lines, then the ROMFS image main.py writes
# to the partition when the slot boots (protocol/ota.py MAGIC).
_SLOT_A = const("ota/release-a")
_SLOT_B = const("ota/release-b")
_FLASHED = const("ota/flashed")  # the image tools/flash wrote, kept before the first update
_ROM = const("ota/rom.slot")  # the slot the partition holds (main.py); missing: as flashed
_MAGIC = const(b"bagscan-release 2\n")
_KEY_FILE = const("release.pub")  # in the running code's root: the release key's modulus
# What the handheld reports (protocol/ota.py EVENTS).
_READY = const("ready")
_TRIAL_STARTING = const("trial_starting")
_TRIAL_CONFIRMED = const("trial_confirmed")
_HASH_MISMATCH = const("hash_mismatch")
_BAD_SIGNATURE = const("bad_signature")
_ROLLED_BACK = const("rolled_back")
_NO_ROMFS = const("no_romfs")


async def start(board, firmware_version):
    """The sync of a started board (its handheld is sync.handheld)."""
    ticks_start = getattr(board, "ticks_start", None)  # the simulated board's test hook
    if ticks_start is not None:
        clock.start_ticks_at(ticks_start)
    storage = board.storage
    raw = flashfile.read_or(storage + "/config.json")
    if raw is None:
        raise OSError("no config.json in " + storage + ": provision the device first")
    settings = json.loads(raw)
    raw = None  # a provisioning file may carry a parcel cache: not kept while this runs
    path = storage + "/boot"
    try:
        boot = int(flashfile.read_or(path, b"0")) + 1
    except ValueError:  # unreadable counter: boot ids only label records, seqs identify them
        boot = 1
    flashfile.write_atomic(path, str(boot).encode())
    # Collections between the start-up steps keep the long-lived objects packed together,
    # so the heap does not fragment around the garbage of recovery (~100 KB heaps). The
    # MQTT client comes first: its packet buffer is the largest block the device keeps.
    gc.collect()
    client = MQTTClient(_client_config(settings, storage))
    gc.collect()
    journal = Journal(storage + "/journal")
    gc.collect()
    handheld = Handheld(Ui(board), journal, settings, boot, storage)
    gc.collect()
    sync = Sync(client, journal, handheld, firmware_version, board)
    board.state_provider = sync.state
    await board.start()
    board.display.apply(settings.get("screen_lang"), storage)
    handheld.home()
    gc.collect()
    await board.net_up(settings.get("wifi"))
    if read_or(__import__("__main__").__file__[:-7] + _TRIAL) is not None:
        asyncio.create_task(wait(sync))  # an update on trial (below)
    return sync


def _client_config(settings, storage):
    """The MQTT client's settings for the sync (net/mqtt.py, docs/mqtt-client.md)."""
    mqtt = settings["mqtt"]
    device_id = settings["device_id"]
    return {
        "host": mqtt["host"],
        "port": mqtt["port"],
        "client_id": "bagscan-" + device_id,
        "user": mqtt["user"],
        "password": mqtt["password"],
        "tls": bool(mqtt.get("tls")),
        "ca": mqtt.get("ca"),
        "window": _WINDOW,
        # A config message (up to wire.MAX_MESSAGE bytes) goes to flash as it arrives, and
        # app/config.py reads it from there: no block of its size in a ~100 KB heap.
        "spool": storage + "/inbox.json",
        "max_packet": 4 + len(wire.topic(device_id, wire.CONFIG)) + wire.MAX_MESSAGE,
        # A full batch's PUBLISH: fixed header (1 + up to 4), topic (2 + its bytes), id (2).
        "slot_bytes": 9
        + len(wire.topic(device_id, wire.EVENTS))
        + len(wire.EVENTS_OPEN)
        + _BATCH_BYTES
        + len(wire.EVENTS_CLOSE),
        "will": {
            "topic": wire.topic(device_id, wire.STATUS),
            "payload": b'{"v":1,"online":false}',
            "retain": True,
            "qos": 1,
        },
    }


# --- Firmware updates over the air (docs/ota.md) ---------------------------------------------
# app/sync.py hands each firmware message of the gateway to on_message, loading this module
# for the call. An update needs a few KB of code only while one is offered, and no names of
# its own: a module of its own would intern its path, and a running handheld's interned names
# past 620 need a 7 KB block (a new pool, docs/firmware.md "Few interned names") that its
# fragmented heap does not have. So this code lives in the start-up module, whose name is
# interned anyway, and every name in it is one MicroPython has built in or the firmware
# interns anyway (its functions and arguments too); texts longer than 10 characters are
# never interned. The messages and files are protocol/ota.py's and docs/ota.md's; the
# constants (at the top) agree with protocol/ota.py (tests/firmware/test_release_signature.py).


def on_message(sync, payload):
    """A firmware message from the gateway (bytes, or the file it was spooled to): an offer,
    a chunk of the release, or the confirmation that the gateway heard the new version."""
    file = io.BytesIO(payload) if isinstance(payload, bytes) else payload
    kind = file.read(1)  # pyright: ignore[reportAttributeAccessIssue] - the stubs' BytesIO
    if not kind:
        return
    if kind[0] == _OFFER:
        apply(sync, json.loads(file.read()))  # pyright: ignore[reportAttributeAccessIssue]
    elif kind[0] == _CHUNK:
        store(sync, file)
    elif kind[0] == _CONFIRM:
        version = file.read()  # pyright: ignore[reportAttributeAccessIssue]
        path = __import__("__main__").__file__[:-7]
        name = read_or(path + _TRIAL)
        if name is not None and head(path + name.decode()) == version:
            write_atomic(path + _ACTIVE, name)  # main.py boots it from now on
            remove_if_exists(path + _TRIAL)
            remove_if_exists(path + _BOOTS)
        if version.decode() == sync.firmware_version and read_or(path + _TRIAL) is None:
            report(sync, {"fw": sync.firmware_version, "status": _TRIAL_CONFIRMED})


def apply(sync, msg):
    """An offer {"fw", "size", "digest", "sig"}: ask for the next chunk, or check what is
    staged, move it into the free slot and switch to it."""
    version = msg["fw"]
    path = __import__("__main__").__file__[:-7]
    if version == sync.firmware_version or read_or(path + _TRIAL) is not None:
        return  # running it, or on trial: the gateway's confirmation comes first
    # The release's image (after its two header lines) must fit the ROMFS partition: main.py
    # writes it there. A board without one has no rom_ioctl or gets an error code.
    try:
        room = len(vfs.rom_ioctl(2, 0))  # pyright: ignore[reportAttributeAccessIssue]
    except (AttributeError, TypeError):
        room = 0
    if msg["size"] - len(_MAGIC) - len(version) - 1 > room:
        report(sync, {"fw": version, "status": _NO_ROMFS})
        return
    name = read_or(path + _FAILED)
    if name is not None and head(path + name.decode()) == version.encode():
        report(sync, {"fw": version, "status": _ROLLED_BACK})
        return
    target = _SLOT_B if read_or(path + _ACTIVE) == _SLOT_A.encode() else _SLOT_A
    if head(path + target) == version.encode():
        ready(sync, version, target)
        return
    data = read_or(path + _STAGE_JSON)
    if data is None or json.loads(data) != msg:
        remove_if_exists(path + _STAGE_BIN)
        try:
            os.mkdir(path + _STAGE_JSON[:3])
        except OSError:
            pass  # there already
        write_atomic(path + _STAGE_JSON, json.dumps(msg))
    offset = size(path + _STAGE_BIN)
    if offset < msg["size"]:
        report(sync, {"fw": version, "offset": offset})
        return
    status = check(path, msg)
    if status is None:
        save(path, sync.firmware_version)
        remove_if_exists(path + target)
        os.rename(path + _STAGE_BIN, path + target)  # one step: a cut leaves the stage or the slot
    remove_if_exists(path + _STAGE_BIN)
    remove_if_exists(path + _STAGE_JSON)
    if status is None:
        ready(sync, version, target)
    else:
        report(sync, {"fw": version, "status": status})


def store(sync, file):
    """A chunk: appended to the staged release if it is the next one and arrived whole (its
    CRC-32); then the next one is asked for."""
    chunk = file.read(_CHUNK_HEAD - 1)  # release id (4), offset (4), CRC-32 (4)
    path = __import__("__main__").__file__[:-7]
    data = read_or(path + _STAGE_JSON)
    if data is None or len(chunk) != _CHUNK_HEAD - 1:
        return
    msg = json.loads(data)
    if binascii.hexlify(chunk[:4]).decode() != msg["digest"][:8]:
        return  # a chunk of another release
    offset = int.from_bytes(chunk[4:8], "big")
    if offset == size(path + _STAGE_BIN):
        buf = bytearray(_PIECE)
        value = 0
        while True:
            n = file.readinto(buf)
            if not n:
                break
            value = binascii.crc32(memoryview(buf)[:n], value)
        if value == int.from_bytes(chunk[8:12], "big"):  # else damaged: asked for again
            file.seek(_CHUNK_HEAD)
            with open(path + _STAGE_BIN, "r+b" if offset else "wb") as out:
                out.seek(offset)
                while True:
                    n = file.readinto(buf)
                    if not n:
                        break
                    out.write(memoryview(buf)[:n])
    apply(sync, msg)


def check(path, msg):
    """None when the staged release has the offer's SHA-256 and a signature by the release
    key the running code carries (RSA-2048 PKCS#1 v1.5, RFC 8017 section 8.2.2: s^e mod n
    is the padded DigestInfo); else what to report."""
    digest = hashlib.sha256()
    buf = bytearray(_PIECE)
    with open(path + _STAGE_BIN, "rb") as file:
        while True:
            n = file.readinto(buf)
            if not n:
                break
            digest.update(memoryview(buf)[:n])
    digest = digest.digest()
    if binascii.hexlify(digest).decode() != msg["digest"]:
        return _HASH_MISMATCH
    key = read_or(__file__[: __file__.rfind("app")] + _KEY_FILE)  # <root>app/boot.mpy
    sig = binascii.unhexlify(msg["sig"])
    value = int.from_bytes(sig, "big")
    if key is None or len(sig) != _KEY_BYTES or value >= int(key.strip(), 16):
        return _BAD_SIGNATURE
    pad = b"\xff" * (_KEY_BYTES - 3 - len(_SHA256_INFO) - len(digest))
    block = b"\x00\x01" + pad + b"\x00" + _SHA256_INFO + digest
    if pow(value, 65537, int(key.strip(), 16)) != int.from_bytes(block, "big"):
        return _BAD_SIGNATURE
    return None


def save(path, version):
    """The flashed code's image, as tools/flash wrote the ROMFS partition, into a release file
    before an update first has main.py rewrite the partition: the way back for a rollback.
    ota/rom.slot written after it names what the partition holds from then on."""
    if read_or(path + _ROM) is not None:
        return
    # The stubs lack rom_ioctl (MicroPython 1.25+, extmod/vfs_rom_ioctl.c): 2 = the segment.
    data = vfs.rom_ioctl(2, 0)  # pyright: ignore[reportAttributeAccessIssue]
    # Its length: the ROMFS header (3 bytes) and a varuint of what follows (mpremote's
    # romfs.py VfsRomWriter finalise).
    n = 0
    at = 3
    while True:
        n = n << 7 | data[at] & 0x7F
        at += 1
        if data[at - 1] < 0x80:
            break
    n += at
    with open(path + _FLASHED, "wb") as file:
        file.write(_MAGIC + version.encode() + b"\n")
        for at in range(0, n, _PIECE):
            file.write(data[at : min(n, at + _PIECE)])
    write_atomic(path + _ROM, _FLASHED)


def head(path):
    """The version in the head of a release file (its second line, bytes), None if there is
    no file."""
    try:
        with open(path, "rb") as file:
            file.readline()
            return file.readline().strip()
    except OSError:
        return None


def ready(sync, version, target):
    """Switch to the slot target now if nothing is under way (bagging without an open bag,
    no parcel request waiting: no courier's handover, no weighing); else the gateway's next
    offer asks again."""
    state = sync.handheld.state()
    if state["mode"] != "bagging" or state["bag"] is not None or sync.waiting is not None:
        report(sync, {"fw": version, "status": _READY})
        return
    path = __import__("__main__").__file__[:-7]
    remove_if_exists(path + _BOOTS)
    remove_if_exists(path + _FAILED)
    write_atomic(path + _TRIAL, target)
    asyncio.create_task(exit(sync, {"fw": version, "status": _TRIAL_STARTING}))


def report(sync, msg):
    """What the handheld did, or the chunk it wants, on its REQUEST topic, QoS 0: a lost one
    is made good by the gateway's next offer."""
    topic = wire.topic(sync.handheld.settings["device_id"], wire.REQUEST)
    asyncio.create_task(sync.client.publish(topic, json.dumps(msg).encode(), 0))


async def exit(sync, msg):
    """Report the switch, then reset into it: SystemExit is a soft reset on the ESP32 (main.py
    again), and ends the simulator's process, which its harness starts again."""
    topic = wire.topic(sync.handheld.settings["device_id"], wire.REQUEST)
    await sync.client.publish(topic, json.dumps(msg).encode(), 0)
    await asyncio.sleep_ms(_REPORT_MS)
    sys.exit(3)


async def wait(sync):
    """While an update is on trial: reset if the gateway has not confirmed it in
    _TRIAL_WAIT_MS, once bagging has no open bag (this boot counts towards main.py's 3)."""
    path = __import__("__main__").__file__[:-7]
    n = 0
    while read_or(path + _TRIAL) is not None:
        if n * _TRIAL_POLL_MS >= _TRIAL_WAIT_MS:
            state = sync.handheld.state()
            if state["mode"] == "bagging" and state["bag"] is None:
                sys.exit(3)
        await asyncio.sleep_ms(_TRIAL_POLL_MS)
        n += 1


def size(path):
    """The bytes of a file, 0 if it is missing."""
    try:
        return os.stat(path)[6]
    except OSError:
        return 0
