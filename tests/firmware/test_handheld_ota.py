"""Firmware updates over the air (issue 19 item 1, docs/ota.md), with the real firmware running
from its flash in the simulator, a real Mosquitto and the gateway: a release uploaded and
rolled out is fetched in chunks, checked, switched to and confirmed; a chunk damaged in
transit is asked for again; a damaged or wrongly signed release is refused; a power cut while
fetching, at the switch or while the ROMFS partition is rewritten resumes; a release that crashes at boot is rolled
back. Every case ends on a version that runs, with the journal intact."""

import hashlib
import json
import sqlite3
import threading
import time
import zlib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from devkit import release, romfs
from devkit.control import ControlError
from devkit.handheld import SimHandheld
from devkit.updates import (
    parcels_stored,
    registered_handheld,
    roll_out,
    settled,
    upload,
    wait_update,
)
from protocol import ota, wire

OLD = release.firmware_version()
NEW = "0.2.1-ota"  # the good release's version


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """The fleet's release key, and release files built from firmware variants with it."""
    tmp = tmp_path_factory.mktemp("releases")
    key = tmp / "release.key"
    release.make_key(key)
    other_key = tmp / "other.key"
    release.make_key(other_key)
    files = {"key": key}
    # Boots, but its MQTT client knocks on a port nobody listens on; a trial gives up soon.
    unreachable = (
        ("app/boot.py", '"port": mqtt["port"],', '"port": 1,'),
        ("app/boot.py", "_TRIAL_WAIT_MS = const(300000)", "_TRIAL_WAIT_MS = const(3000)"),
    )
    for name, version, signer, crash, edits in (
        ("good", NEW, key, False, ()),
        ("crash", "0.2.2-crash", key, True, ()),
        ("forged", "0.2.3-forged", other_key, False, ()),
        ("unreachable", "0.2.4-offline", key, False, unreachable),
    ):
        files[name] = tmp / f"{name}.release"
        firmware = release.firmware_variant(tmp / name, version, crash, edits)
        release.build(signer, files[name], "host", "sim", firmware)
    return files


class WatchRequests:
    """The handheld's firmware requests as the broker carries them, seen by the test's own
    client: seen is set once one matches pred; offsets lists the chunks asked for."""

    def __init__(self, port: int, device_id: str, pred):
        self.pred = pred
        self.seen = threading.Event()
        self.offsets: list[int] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{device_id}")
        topic = wire.topic(device_id, wire.REQUEST)
        self.client.on_connect = lambda c, *_a: c.subscribe(topic, 0)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        if not ota.is_request(msg.payload):
            return
        body = json.loads(msg.payload)
        if "offset" in body:
            self.offsets.append(body["offset"])
        if self.pred(body):
            self.seen.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class CorruptChunks(WatchRequests):
    """Answers a chunk request before the gateway does, with that chunk damaged in transit
    (a byte flipped, the CRC-32 of the original), until the handheld is seen asking for a
    damaged chunk's offset again: refused holds that offset. A damaged chunk that arrives
    after the real one has an offset the handheld no longer waits for, and is dropped."""

    def __init__(self, port: int, device_id: str, release_file: Path):
        _, self.packed, _ = ota.split_release(release_file.read_bytes())
        self.ident = hashlib.sha256(self.packed).digest()[:4]
        self.topic = wire.topic(device_id, wire.PARCEL)
        self.damaged: int | None = None
        self.refused: int | None = None
        super().__init__(port, device_id, lambda _m: False)

    def _on_message(self, client, userdata, msg) -> None:
        super()._on_message(client, userdata, msg)
        if self.refused is not None or not self.offsets or "offset" not in json.loads(msg.payload):
            return
        offset = self.offsets[-1]
        if offset == self.damaged:
            self.refused = offset  # asked again: the damaged copy came first and was refused
            self.seen.set()
            return
        data = self.packed[offset : offset + ota.CHUNK_BYTES]
        head = bytes([ota.CHUNK]) + self.ident + offset.to_bytes(4, "big")
        head += zlib.crc32(data).to_bytes(4, "big")
        self.damaged = offset
        self.client.publish(self.topic, head + bytes([data[0] ^ 0xFF]) + data[1:], 0)


def unpacked(packed: bytes) -> tuple[str, bytes]:
    """(version, ROMFS image) of a release's packed part, which is what a slot holds
    (protocol/ota.py MAGIC)."""
    _magic, version, image = packed.split(b"\n", 2)
    return version.decode(), image


def partition_holds(code_root: Path, image: bytes) -> bool:
    """Whether the simulated ROMFS partition holds image (what follows it is either erased
    flash or what a larger image left there: a ROMFS image says its own length)."""
    return (code_root / romfs.PARTITION).read_bytes()[: len(image)] == image


def release_image(release_file: Path) -> bytes:
    """The ROMFS image in a release file."""
    return unpacked(ota.split_release(release_file.read_bytes())[1])[1]


# Each test has a broker and a gateway of its own: one device id serves them all.
DEVICE = "hh-ota"


def upload_and_roll_out(gateway, release_file: Path) -> str:
    version = upload(gateway, release_file)
    assert roll_out(gateway, version, devices=[DEVICE]) == [DEVICE]
    return version


def scanned(*numbers: int) -> list[str]:
    return [f"LZ{700_000_000 + i:09d}CN" for i in numbers]


def bag_closed(ctl, first: int) -> None:
    """A bag of two parcels (unknown to the gateway: accepted), weighed and closed: records
    the journal must keep."""
    for trk in scanned(first, first + 1):
        assert ctl.scan(trk)["beep"] == "ok"
    ctl.weigh(3_000)
    ctl.key("ok")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
    ctl.weigh(0)


@pytest.fixture
def sim(tmp_path, broker_and_gateway, releases):
    """The handheld, running the flashed code with the release key, with a closed bag of
    scanned(1, 2) that the gateway has: records every update must keep."""
    _, gateway = broker_and_gateway
    handheld = registered_handheld(tmp_path / "flash", gateway, DEVICE, releases["key"])
    try:
        bag_closed(handheld.start_through_resets(), 1)
        handheld.control.wait_synced()
        yield handheld
    finally:
        handheld.kill()


def confirmed(gateway, sim: SimHandheld, stored: list[str]) -> dict:
    """The handheld comes back on the new version, the gateway confirms it, and the gateway
    holds exactly the parcels stored, once each and in order."""
    ctl = sim.start_through_resets()
    done = wait_update(gateway, DEVICE, settled("trial_confirmed", NEW))
    ctl.wait_synced()
    assert parcels_stored(gateway, DEVICE) == stored
    return done


def test_a_release_is_fetched_checked_switched_to_and_confirmed(broker_and_gateway, releases, sim):
    _, gateway = broker_and_gateway
    version = upload_and_roll_out(gateway, releases["good"])
    assert sim.wait_reset(120) != 0  # the switch: the handheld resets itself
    done = confirmed(gateway, sim, scanned(1, 2))
    assert done["running"] == version != OLD
    assert (sim.code_root / "ota" / "active.slot").read_text() == "ota/release-a"
    left = {p.name for p in (sim.code_root / "ota").iterdir()}
    # No stage, no trial, no boot count; the flashed image kept for a rollback.
    assert left == {"active.slot", "release-a", "flashed", "rom.slot"}
    assert (sim.code_root / "ota" / "rom.slot").read_text() == "ota/release-a"
    assert partition_holds(sim.code_root, release_image(releases["good"]))
    assert sim.control is not None
    bag_closed(sim.control, 3)  # the new version scans, and its records reach the gateway
    sim.control.wait_synced()
    assert parcels_stored(gateway, DEVICE) == scanned(1, 2, 3, 4)


def test_a_release_signed_by_another_key_is_refused_and_the_old_version_runs(
    broker_and_gateway, releases, sim
):
    _, gateway = broker_and_gateway
    upload_and_roll_out(gateway, releases["forged"])
    refused = wait_update(gateway, DEVICE, settled("bad_signature", OLD))
    assert refused["running"] == OLD
    assert sim.proc is not None and sim.proc.poll() is None  # no reset
    assert not (sim.code_root / "ota" / "trial.slot").exists()
    assert sim.control is not None
    bag_closed(sim.control, 3)


def test_a_release_damaged_on_the_gateway_is_refused_by_its_hash(broker_and_gateway, releases, sim):
    _, gateway = broker_and_gateway
    version = upload(gateway, releases["good"])
    # One byte of the stored bundle changed after its hash was taken: every chunk's CRC
    # matches what is sent, only the whole file's hash can tell.
    with sqlite3.connect(gateway.db_url.removeprefix("sqlite:///"), timeout=30) as conn:
        (packed,) = conn.execute("SELECT packed FROM firmware_releases").fetchone()
        damaged = packed[:5000] + bytes([packed[5000] ^ 0xFF]) + packed[5001:]
        conn.execute("UPDATE firmware_releases SET packed = ?", (damaged,))
    assert roll_out(gateway, version, devices=[DEVICE]) == [DEVICE]
    refused = wait_update(gateway, DEVICE, settled("hash_mismatch", OLD))
    assert refused["running"] == OLD
    assert not (sim.code_root / "ota" / "stage.bin").exists()
    assert sim.control is not None
    bag_closed(sim.control, 3)


def test_a_chunk_damaged_in_transit_is_refused_and_asked_for_again(
    broker_and_gateway, releases, sim
):
    broker, gateway = broker_and_gateway
    damage = CorruptChunks(broker.port, DEVICE, releases["good"])
    try:
        upload_and_roll_out(gateway, releases["good"])
        assert damage.seen.wait(120), damage.offsets  # a damaged chunk was refused
        sim.wait_reset(120)  # the rest fetched, the whole file's hash and signature good
        assert confirmed(gateway, sim, scanned(1, 2))["running"] == NEW
    finally:
        damage.close()


def test_a_release_that_crashes_at_boot_is_rolled_back_by_the_handheld(
    broker_and_gateway, releases, sim
):
    _, gateway = broker_and_gateway
    upload_and_roll_out(gateway, releases["crash"])
    sim.wait_reset(120)
    # Three boots on trial, each ending in the release's crash; at the fourth main.py drops
    # the trial and the old version runs.
    ctl = sim.start_through_resets()
    assert sim.launches == 1 + 4
    assert (sim.code_root / "ota" / "failed.slot").read_text() == "ota/release-a"
    assert not (sim.code_root / "ota" / "trial.slot").exists()
    # The partition holds the flashed image again, written back from its copy.
    assert (sim.code_root / "ota" / "rom.slot").read_text() == "ota/flashed"
    flashed = unpacked((sim.code_root / "ota" / "flashed").read_bytes())[1]
    assert partition_holds(sim.code_root, flashed)
    rolled = wait_update(gateway, DEVICE, settled("rolled_back", OLD))
    assert rolled["running"] == OLD
    bag_closed(ctl, 3)
    ctl.wait_synced()
    assert parcels_stored(gateway, DEVICE) == scanned(1, 2, 3, 4)


def test_a_release_that_never_reaches_the_gateway_resets_on_trial_and_is_rolled_back(
    broker_and_gateway, releases, sim
):
    _, gateway = broker_and_gateway
    upload_and_roll_out(gateway, releases["unreachable"])
    sim.wait_reset(120)
    # Each boot on trial waits for the gateway's confirmation, then resets itself.
    for _ in range(3):
        sim.start_through_resets()
        assert sim.wait_reset(60) == 3
    ctl = sim.start_through_resets()  # the 4th: main.py drops the trial
    assert (sim.code_root / "ota" / "failed.slot").read_text() == "ota/release-a"
    rolled = wait_update(gateway, DEVICE, settled("rolled_back", OLD))
    assert rolled["version"] == "0.2.4-offline"
    bag_closed(ctl, 3)
    ctl.wait_synced()
    assert parcels_stored(gateway, DEVICE) == scanned(1, 2, 3, 4)


def test_a_power_cut_while_fetching_resumes_from_what_is_staged(broker_and_gateway, releases, sim):
    broker, gateway = broker_and_gateway
    two_chunks = WatchRequests(
        broker.port, DEVICE, lambda m: m.get("offset", 0) >= 2 * ota.CHUNK_BYTES
    )
    try:
        upload_and_roll_out(gateway, releases["good"])
        assert two_chunks.seen.wait(60)
        sim.kill()  # the power cut, with part of the release on flash
        staged = (sim.code_root / "ota" / "stage.bin").stat().st_size
        assert 2 * ota.CHUNK_BYTES <= staged < releases["good"].stat().st_size
        before = len(two_chunks.offsets)
        sim.start_through_resets()
        sim.wait_reset(120)  # fetched the rest, switched
        assert two_chunks.offsets[before] == staged  # resumed, not started over
        confirmed(gateway, sim, scanned(1, 2))
    finally:
        two_chunks.close()


def test_a_power_cut_while_the_partition_is_rewritten_writes_it_again_at_the_next_boot(
    broker_and_gateway, releases, sim
):
    broker, gateway = broker_and_gateway
    switching = WatchRequests(broker.port, DEVICE, lambda m: m.get("status") == ota.TRIAL_STARTING)
    try:
        upload_and_roll_out(gateway, releases["good"])
        assert switching.seen.wait(60)
        sim.kill()  # before the reset, and then the cut as main.py writes the trial's image:
        image = release_image(releases["good"])
        partition = sim.code_root / romfs.PARTITION
        size = partition.stat().st_size
        (sim.code_root / "ota" / "rom.slot").write_text("")  # names nothing while it writes
        partition.write_bytes(image[: len(image) // 2] + b"\xff" * (size - len(image) // 2))
        assert confirmed(gateway, sim, scanned(1, 2))["running"] == NEW
        assert (sim.code_root / "ota" / "rom.slot").read_text() == "ota/release-a"
        assert partition_holds(sim.code_root, image)
        assert partition.stat().st_size == size
    finally:
        switching.close()


def test_no_switch_while_a_bag_is_open_nor_after_a_power_cut_until_it_is_closed(
    broker_and_gateway, releases, sim
):
    broker, gateway = broker_and_gateway
    ready = WatchRequests(broker.port, DEVICE, lambda m: m.get("status") == ota.READY)
    try:
        ctl = sim.control
        assert ctl is not None
        assert ctl.scan(scanned(3)[0])["beep"] == "ok"  # a bag is open
        ctl.wait_synced()
        upload_and_roll_out(gateway, releases["good"])
        assert ready.seen.wait(60)  # fetched, checked, in its slot: waits for the bag
        assert sim.proc is not None and sim.proc.poll() is None
        sim.kill()  # the power cut between the check and the switch
        assert unpacked((sim.code_root / "ota" / "release-a").read_bytes())[0] == NEW
        assert not (sim.code_root / "ota" / "trial.slot").exists()
        ctl = sim.start_through_resets()  # the old version, its open bag rebuilt
        assert ctl.state()["bag_count"] == 1
        assert ctl.scan(scanned(4)[0])["beep"] == "ok"
        ctl.weigh(3_000)
        ctl.key("ok")  # closed: the next offer switches
        sim.wait_reset(120)
        confirmed(gateway, sim, scanned(1, 2, 3, 4))
    finally:
        ready.close()


def test_a_power_cut_as_the_switch_begins_boots_the_new_version_on_trial(
    broker_and_gateway, releases, sim
):
    broker, gateway = broker_and_gateway
    switching = WatchRequests(broker.port, DEVICE, lambda m: m.get("status") == ota.TRIAL_STARTING)
    try:
        upload_and_roll_out(gateway, releases["good"])
        assert switching.seen.wait(60)
        sim.kill()  # before the handheld's own reset
        assert (sim.code_root / "ota" / "trial.slot").read_text() == "ota/release-a"
        assert confirmed(gateway, sim, scanned(1, 2))["running"] == NEW
    finally:
        switching.close()


FLEET = 20


def scan_bags(sim: SimHandheld, first: int, stop: threading.Event, confirmed: list) -> None:
    """Bags of three parcels, one after another, until stop is set; every scan the handheld
    confirmed with its OK beep goes into confirmed. When the handheld resets itself (the
    switch), the operator waits for it and goes on."""
    ctl = sim.control
    n = first
    while not stop.is_set():
        try:
            assert ctl is not None
            for _ in range(3):
                trk = f"LZ{n:09d}CN"
                n += 1
                if ctl.scan(trk)["beep"] == "ok":
                    confirmed.append(trk)
            ctl.weigh(3_000)
            ctl.key("ok")
            ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
            ctl.weigh(0)
            time.sleep(0.5)
        except (OSError, ControlError):
            sim.wait_reset(120)
            ctl = sim.start_through_resets()


@pytest.mark.slow
def test_twenty_handhelds_are_updated_while_they_scan_and_no_scan_is_lost(
    tmp_path, broker_and_gateway, releases
):
    _, gateway = broker_and_gateway
    ids = [f"hh-fleet-{i:02d}" for i in range(FLEET)]
    sims = [registered_handheld(tmp_path / "flash", gateway, d, releases["key"]) for d in ids]
    stop = threading.Event()
    confirmed: dict[str, list] = {d: [] for d in ids}
    threads = []
    try:
        for sim in sims:
            sim.start_through_resets(120)
        for i, (d, sim) in enumerate(zip(ids, sims, strict=True)):
            first = 800_000_000 + 10_000 * i
            threads.append(
                threading.Thread(target=scan_bags, args=(sim, first, stop, confirmed[d]))
            )
            threads[-1].start()
        assert upload(gateway, releases["good"]) == NEW
        assert sorted(roll_out(gateway, NEW, all=True)) == ids
        at_confirmation = {}
        for d in ids:
            wait_update(gateway, d, settled("trial_confirmed", NEW), timeout=600)
            at_confirmation[d] = len(confirmed[d])
        time.sleep(10)  # a bag or two more on the new version
        stop.set()
        for t in threads:
            t.join(180)
        for d, sim in zip(ids, sims, strict=True):
            assert sim.control is not None
            sim.control.wait_synced(120)
            stored = parcels_stored(gateway, d)
            assert len(stored) == len(set(stored)), d  # once each
            assert set(confirmed[d]) <= set(stored), d  # every confirmed scan arrived
            assert 0 < at_confirmation[d] < len(confirmed[d]), d  # scanned before and after
    finally:
        stop.set()
        for sim in sims:
            sim.kill()
