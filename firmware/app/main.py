# Runs the handheld as one asyncio program once app/boot.py has wired the board, the
# journal, the workflow and the sync: one task per concern (scanner, keys, scale, sync);
# a global handler keeps the device alive.
import asyncio
import gc
import sys

from micropython import const

import lazy
from drivers.gm65 import BadBarcode
from drivers.scale import ScaleError

_FIRMWARE_VERSION = const("0.2.0")
_WEIGHT_STEP_G = const(5)
# sys.modules' table grows into a new block (16 bytes a slot on the 64-bit unix port, never
# shrunk) when a module loads into a full one (py/map.c; sizes 29, 37, 47 ...). A booted
# handheld holds 29 modules, so app/signing.py at the courier's PIN check grew it to 37
# slots: the memory test's "allocating 592 bytes" in a heap a full bag had fragmented. run()
# grows it at boot to hold this many at once (a mode, app/config.py and app/signing.py on top).
_MODULES = const(30)


# Each input task outlives any error of one input (MemoryError included, in a ~100 KB heap):
# what that input started is lost, and the task goes on. A task that died would leave the
# device without its scanner, keys or scale until a reboot.


async def scanner_task(board, handheld):
    while True:
        try:
            asked = handheld.on_scan(await board.scanner.read())
            if asked is not None:  # a parcel the cache lacks: the gateway's answer first
                await asked
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
    sync = await lazy.call("app.boot", "start", board, _FIRMWARE_VERSION)
    handheld = sync.handheld
    gc.collect()  # app/boot.py's code is gone now
    asyncio.create_task(scanner_task(board, handheld))
    asyncio.create_task(keys_task(board, handheld))
    asyncio.create_task(scale_task(board, handheld))
    await sync.run()


def run():
    # Keys that are never module names (ints), added and removed: the table keeps its size.
    n = 0
    while len(sys.modules) < _MODULES:
        sys.modules[n] = None  # pyright: ignore[reportArgumentType] - a placeholder
        n += 1
    for i in range(n):
        del sys.modules[i]  # pyright: ignore[reportArgumentType]
    gc.collect()
    board = lazy.call("hal", "make_board")  # the board's module stays, the choosing goes
    try:
        asyncio.run(start(board))
    except KeyboardInterrupt:
        sys.exit(0)
