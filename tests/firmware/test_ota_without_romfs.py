"""A handheld writes a release's image to its ROMFS partition (docs/ota.md, "On the flash"). One
flashed without the partition (tools/flash without --romfs), or whose partition is smaller
than the image, has nowhere to write it: it refuses the offer with no_romfs and fetches
nothing. The real firmware's app/boot.py in the unix port, whose vfs has no rom_ioctl (as an
ESP32 build without ROMFS support); a partition is stood in where one is needed."""

import json

import pytest

from protocol import ota, wire

OFFER = {"fw": "0.3.0", "size": 70_000, "digest": "ab" * 32, "sig": "cd" * 256}
# The image is the release less its two header lines (protocol/ota.py MAGIC, the version).
IMAGE = OFFER["size"] - len(ota.MAGIC) - len(OFFER["fw"]) - 1


def offered(run_mpy, root, partition: int | None) -> dict:
    """What the handheld reports to OFFER, with a ROMFS partition of that many bytes (None:
    the unix port's vfs, which has none)."""
    stand_in = (
        "import sys\n"
        "class vfs:  # the board's module, with a partition of the given size\n"
        "    def rom_ioctl(*args):\n"
        f"        return memoryview(bytearray({partition}))\n"
        "sys.modules['vfs'] = vfs\n"
        if partition is not None
        else ""
    )
    proc = run_mpy(
        f"__file__ = {str(root / 'main.py')!r}  # the code's root, as main.py's folder\n"
        + stand_in
        + "import asyncio, json\n"
        "from app import boot\n"
        "sent = []\n"
        "class Client:\n"
        "    async def publish(self, topic, payload, qos):\n"
        "        sent.append((topic, payload))\n"
        "class Handheld:\n"
        "    settings = {'device_id': 'hh-1'}\n"
        "class Sync:\n"
        "    firmware_version = '0.2.0'\n"
        "    client = Client()\n"
        "    handheld = Handheld()\n"
        f"boot.on_message(Sync(), b'U' + json.dumps({OFFER!r}).encode())\n"
        "async def reported():\n"
        "    await asyncio.sleep_ms(10)  # the report's task runs\n"
        "asyncio.run(reported())\n"
        "print('SENT', json.dumps([[t, p.decode()] for t, p in sent]))\n",
        heap="1M",  # app/boot.py and what it imports, compiled from source here
    )
    [[topic, payload]] = json.loads(proc.stdout.split("SENT ", 1)[1])
    assert topic == wire.topic("hh-1", wire.REQUEST)
    return json.loads(payload)


@pytest.mark.parametrize("partition", [None, IMAGE - 1], ids=["no partition", "one too small"])
def test_an_offer_the_partition_cannot_take_is_refused_and_nothing_fetched(
    run_mpy, tmp_path, partition
):
    root = tmp_path / "code"
    root.mkdir()
    assert offered(run_mpy, root, partition) == {"fw": "0.3.0", "status": ota.NO_ROMFS}
    assert not (root / "ota").exists()  # nothing staged, nothing asked for


def test_an_offer_whose_image_fits_the_partition_is_fetched(run_mpy, tmp_path):
    root = tmp_path / "code"
    root.mkdir()
    assert offered(run_mpy, root, IMAGE) == {"fw": "0.3.0", "offset": 0}
