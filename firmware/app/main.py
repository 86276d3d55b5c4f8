# Wires the board, the journal, the workflow and the sync into one asyncio program.
# One task per concern: scanner, keys, scale, sync; a global handler keeps the device alive.
import asyncio
import gc
import json
import sys

from micropython import const

import lazy
from app import clock, store
from app.journal import Journal
from app.sync import Sync
from app.ui import Ui
from app.workflow import Handheld
from drivers.gm65 import BadBarcode
from drivers.scale import ScaleError
from net.mqtt import MQTTClient

_FIRMWARE_VERSION = const("0.2.0")
_WEIGHT_STEP_G = const(5)


# Each input task outlives any error of one input (MemoryError included, in a ~100 KB heap):
# what that input started is lost, and the task goes on. A task that died would leave the
# device without its scanner, keys or scale until a reboot.


async def scanner_task(board, handheld):
    while True:
        try:
            handheld.on_scan(await board.scanner.read())
        except BadBarcode:
            handheld.on_bad_barcode()
        except Exception as e:  # noqa: BLE001
            await _lost(e)


async def keys_task(board, handheld):
    while True:
        try:
            handheld.on_key(await board.keys.next())
        except Exception as e:  # noqa: BLE001
            await _lost(e)


async def scale_task(board, handheld):
    last = None
    while True:
        try:
            grams = await board.scale.stable_grams()
            # Report a new weight when it moved by more than the noise of a settled reading,
            # so that 50.00 kg -> 50.01 kg is seen (the 50 kg limit is exact to the gram).
            if last is None or abs(grams - last) >= _WEIGHT_STEP_G:
                last = grams
                handheld.on_weight(grams)
            await asyncio.sleep_ms(100)
        except ScaleError:
            await asyncio.sleep_ms(200)
        except Exception as e:  # noqa: BLE001
            await _lost(e)


async def _lost(e):
    gc.collect()
    print("input lost:", repr(e))
    await asyncio.sleep_ms(100)  # a failing input must not spin the loop


async def start(board):
    asyncio.get_event_loop().set_exception_handler(
        lambda loop, context: print("error:", context.get("message"), context.get("exception"))
    )
    ticks_start = getattr(board, "ticks_start", None)  # the simulated board's test hook
    if ticks_start is not None:
        clock.start_ticks_at(ticks_start)
    storage = board.storage
    raw = store.read_or(storage + "/config.json")
    if raw is None:
        raise OSError("no config.json in " + storage + ": provision the device first")
    settings = json.loads(raw)
    # This frame lives as long as the device: the file's bytes (a provisioning file may
    # carry a parcel cache) must not.
    del raw
    path = storage + "/boot"
    try:
        boot = int(store.read_or(path, b"0")) + 1
    except ValueError:  # unreadable counter: boot ids only label records, seqs identify them
        boot = 1
    store.write_atomic(path, str(boot).encode())
    # Collections between the start-up steps keep the long-lived objects packed together,
    # so the heap does not fragment around the garbage of recovery (~100 KB heaps).
    gc.collect()
    journal = Journal(storage + "/journal")
    gc.collect()
    handheld = Handheld(Ui(board), journal, settings, boot, storage)
    gc.collect()
    client = MQTTClient(Sync.client_config(settings))
    sync = Sync(client, journal, handheld, _FIRMWARE_VERSION, board)
    board.state_provider = lambda: dict(handheld.state(), connected=client.connected)
    await board.start()
    handheld.home()
    gc.collect()
    await board.net_up(settings.get("wifi"))
    asyncio.create_task(scanner_task(board, handheld))
    asyncio.create_task(keys_task(board, handheld))
    asyncio.create_task(scale_task(board, handheld))
    await sync.run()


def run():
    gc.collect()
    board = lazy.call("hal", "make_board")  # the board's module stays, the choosing goes
    try:
        asyncio.run(start(board))
    except KeyboardInterrupt:
        sys.exit(0)
