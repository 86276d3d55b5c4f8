# Start-up, once per boot: the settings, the boot counter, the journal, the workflow, the
# MQTT client and the sync. app/main.py loads this for the call (lazy.call), so its code
# leaves the ~100 KB heap once the device runs.
import gc
import json

from micropython import const

from app import clock, store, wire
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


async def start(board, firmware_version):
    """The sync of a started board (its handheld is sync.handheld)."""
    ticks_start = getattr(board, "ticks_start", None)  # the simulated board's test hook
    if ticks_start is not None:
        clock.start_ticks_at(ticks_start)
    storage = board.storage
    raw = store.read_or(storage + "/config.json")
    if raw is None:
        raise OSError("no config.json in " + storage + ": provision the device first")
    settings = json.loads(raw)
    raw = None  # a provisioning file may carry a parcel cache: not kept while this runs
    path = storage + "/boot"
    try:
        boot = int(store.read_or(path, b"0")) + 1
    except ValueError:  # unreadable counter: boot ids only label records, seqs identify them
        boot = 1
    store.write_atomic(path, str(boot).encode())
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
    handheld.home()
    gc.collect()
    await board.net_up(settings.get("wifi"))
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
