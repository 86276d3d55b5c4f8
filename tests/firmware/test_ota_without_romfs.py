"""A handheld flashed without a ROMFS partition (tools/flash without --romfs) has nowhere to
write a release's image: it refuses an offer with no_romfs and fetches nothing (docs/ota.md,
"On the flash"). The real firmware's app/boot.py in the unix port, whose vfs has no rom_ioctl,
as an ESP32 build without ROMFS support."""

import json

from protocol import ota, wire

OFFER = {"fw": "0.3.0", "size": 70_000, "digest": "ab" * 32, "sig": "cd" * 256}


def test_an_offer_to_a_handheld_without_a_romfs_partition_is_refused(run_mpy, tmp_path):
    root = tmp_path / "code"
    root.mkdir()
    proc = run_mpy(
        f"__file__ = {str(root / 'main.py')!r}  # the code's root, as main.py's folder\n"
        "import asyncio, json\n"
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
    assert json.loads(payload) == {"fw": "0.3.0", "status": ota.NO_ROMFS}
    assert not (root / "ota").exists()  # nothing staged, nothing asked for
