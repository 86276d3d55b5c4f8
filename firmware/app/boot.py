# Start-up, once per boot: the settings, the boot counter, the journal, the workflow, the
# MQTT client and the sync. app/main.py loads this for the call (lazy.call), so its code
# leaves the ~100 KB heap once the device runs.
import gc
import json

from app import clock, store
from app.journal import Journal
from app.sync import Sync
from app.ui import Ui
from app.workflow import Handheld
from net.mqtt import MQTTClient


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
    client = MQTTClient(Sync.client_config(settings))
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
