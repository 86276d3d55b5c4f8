"""The whole handheld workload in a bounded MicroPython heap (issue 3: an ESP32 without PSRAM).

The real firmware (the .mpy bundle the simulator runs) under `micropython -X heapsize=...`:
a full bag, a courier pickup with a signed handover and a hub arrival in one boot; a
reconnect that drains a backlog of more than 1,000 records through Mosquitto to the gateway;
and a config message the gateway filled to its 16 KB limit with parcels. A MemoryError
anywhere shows up as a missing beep, a dead control channel, a stuck drain or an index that
never fills.

The target is 100K (issue 3), the heap this test runs at. The code runs from its ROMFS
image, outside the heap, as on a board built with ROMFS (devkit/romfs.py; docs/firmware.md,
"Code outside the heap"). Measured 2026-12-07 (docs/benchmarks.md, "The memory test", with
the command): all three pass at 100K down to 80K; before the code left the heap the suite
needed 116K. The workload's screens are Chinese, the gateway's default (issue 18), and its
handover shows the seller's QR code (the heap's fullest moment).
"""

import json
import os
import re
import time

import pytest
from test_handheld_bagging import config
from test_handheld_pickup import PIN, driver_entry, next_beep, to_pickup

from devkit.broker import retained_config
from devkit.handheld import SimHandheld
from gateway.services.device_config import name_glyphs
from protocol import rules, wire

# Issue 3's target; BAGSCAN_MEMORY_TEST_HEAP overrides it, to measure margins.
HEAP = os.environ.get("BAGSCAN_MEMORY_TEST_HEAP", "100K")


def bag_of(ctl, first, count, grams):
    """Scan count parcels (numbered from first) into a new bag, weigh and close it."""
    for i in range(first, first + count):
        event = ctl.scan(f"LZ{i:09d}CN")
        assert event["beep"] == "ok", (i, event)
    ctl.weigh(grams)
    ctl.key("ok")
    return ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]


def mem_alloc(ctl):
    ctl.send("mem")
    return ctl.expect(lambda o: "mem_alloc" in o)["mem_alloc"]


# Interned names are never freed; the unix port holds 620 in its first five pools and adds a
# 640-entry pool (~7 KB) for the 621st (docs/firmware.md, "Few interned names").
INTERNED_NAMES_LIMIT = 620


def interned_names(log):
    """The count of interned names the last "mem" command wrote to the handheld's log."""
    counts = re.findall(r"n_qstr=(\d+)", log.read_text(errors="replace"))
    assert counts, "no qstr_info in the log"
    return int(counts[-1])


def test_full_bag_pickup_and_hub_arrival_in_a_bounded_heap(tmp_path):
    driver = driver_entry()
    hh = SimHandheld.with_config(
        tmp_path / "flash",
        config(
            drivers=[driver],
            bags={"BS0000000077": 30_000},
            # The gateway's default language, with the glyphs of the names it shows.
            screen_lang="zh",
            name_glyphs=name_glyphs([driver["name"]]),
            # The seller's copy at the door: the handover shows the receipt's QR code.
            receipt_url="https://gw.example.cn",
        ),
        HEAP,
    )
    try:
        ctl = hh.start()
        # Bagging: 300 parcels (cache-known ones first), the 301st refused, weighed, closed.
        known = ["LZRTS0001", "LZRTS0002", "LZRTS0003"]
        for trk in known:
            assert ctl.scan(trk)["beep"] == "ok", trk
        for i in range(300 - len(known)):
            assert ctl.scan(f"LZ{i:09d}CN")["beep"] == "ok", i
        assert ctl.scan("LZ999999999CN")["code"] == rules.BAG_FULL
        ctl.weigh(31_000)
        ctl.key("ok")
        closed = ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
        bag_no = closed["screen"][1]
        assert closed["beep"] == "ok"
        assert closed["text"][0] == "已封袋"  # drawn in Chinese
        # Courier pickup: badge + PIN, the bag just closed, a signed handover.
        to_pickup(ctl)
        assert ctl.scan("DRV:D042")["beep"] == "ok"  # a badge scan beeps like every scan
        assert ctl.scan(f"PIN:{PIN}")["beep"] == "ok"
        assert ctl.scan(bag_no)["beep"] == "ok"
        ctl.key("ok")
        door = ctl.expect(lambda o: o.get("screen", [""])[0] == "HANDOVER")
        assert door["beep"] == "ok" and door["screen"][-1] == "UTC+8", door  # the QR's column
        # Hub arrival: a bag of the config's index, weighed within tolerance.
        ctl.key("mode")
        ctl.expect(lambda o: o.get("screen", [""])[0] == "HUB ARRIVAL")
        ctl.send("scan BS0000000077")
        ctl.expect(lambda o: o.get("screen", [""])[0] == "BS0000000077")
        ctl.weigh(30_100)
        ctl.key("ok")
        assert next_beep(ctl)["screen"][1] == "RECEIVED"
        ctl.key("mode")
        ctl.expect(lambda o: o.get("screen", [""])[0] == "BAGGING")
        assert mem_alloc(ctl) > 0  # the control channel still answers
        # Every mode, signing and a config have been loaded: all their names are interned.
        assert interned_names(hh.log) < INTERNED_NAMES_LIMIT
        kinds = [r["k"] for r in hh.journal()]
        assert kinds.count("parcel") == 300
        assert kinds.count("bag_close") == 1 and kinds.count("handover") == 1
        assert kinds.count("arrive") == 1
    finally:
        hh.kill()


@pytest.mark.slow
def test_reconnect_drains_a_backlog_of_1200_records_in_a_bounded_heap(tmp_path, broker_and_gateway):
    broker, gateway = broker_and_gateway
    flash = tmp_path / "flash" / "hh-mem"
    flash.mkdir(parents=True)
    sim = SimHandheld.provisioned(gateway.url, gateway.token, "hh-mem", flash, HEAP)
    try:
        ctl = sim.start()
        ctl.wait_synced(30)
        broker.stop()
        bags = []
        for n in range(4):  # 4 bags of 300: 1,204 records wait on the device
            bags.append(bag_of(ctl, 300 * n, 300, 20_000 + n))
            ctl.weigh(0)
        depth = ctl.state()["journal_depth"]
        assert depth >= 1_200
        broker.start()  # same port, empty: persistence is off in the test broker
        ctl.wait_synced(180)
        assert mem_alloc(ctl) > 0
        db = gateway.db_url.removeprefix("sqlite:///")
        import sqlite3

        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute(
                "SELECT body FROM records WHERE device_id = 'hh-mem' AND kind = 'parcel'"
                " ORDER BY seq"
            ).fetchall()
        assert [json.loads(r[0])["trk"] for r in rows] == [f"LZ{i:09d}CN" for i in range(1200)]
    finally:
        sim.kill()


@pytest.mark.slow
def test_a_full_size_config_message_is_taken_in_a_bounded_heap(tmp_path, broker_and_gateway):
    """The gateway fills a config up to wire.MAX_MESSAGE with its account's parcels: the
    handheld spools it to flash and indexes it an entry at a time (app/config.py)."""
    broker, gateway = broker_and_gateway
    store = {"seller_id": "S1", "seller_name": "Shop"}
    status, account = gateway.api("POST", "/api/accounts", {"name": "Shop"})
    assert status == 201
    assert gateway.api("POST", "/api/stores", store)[0] == 201
    assert gateway.api("POST", f"/api/accounts/{account['id']}/stores", store)[0] == 200
    rows = [
        {
            "tracking_no": f"LZ{i:09d}CN",
            "seller_id": "S1",
            "status": "cancelled" if i % 10 == 0 else "rts",
            "hub": "SZ",
        }
        for i in range(500)  # more than fit: the gateway sends the newest that do
    ]
    assert gateway.api("POST", "/api/parcels", {"parcels": rows})[0] == 200
    status, device = gateway.api(
        "POST", "/api/devices", {"device_id": "hh-cfg", "account_id": account["id"]}
    )
    assert status == 201
    flash = tmp_path / "flash" / "hh-cfg"
    flash.mkdir(parents=True)
    (flash / "config.json").write_text(
        json.dumps({k: device[k] for k in ("device_id", "mqtt", "bag_range")})
    )
    sim = SimHandheld.provisioned(gateway.url, gateway.token, "hh-cfg", flash, HEAP)
    try:
        message = retained_config(broker.port, "hh-cfg")
        assert len(message) > wire.MAX_MESSAGE - 200
        cached = json.loads(message)["parcels"]
        ctl = sim.start()
        mark = flash / "parcels" / "digest"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if mark.exists() and mark.read_text().split()[0] == str(len(cached)):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"parcel index never held {len(cached)} parcels")
        cancelled = [t for t, facts in cached.items() if facts[0] == "cancelled"]
        ready = [t for t, facts in cached.items() if facts[0] == "rts"]
        assert ctl.scan(cancelled[-1])["code"] == rules.CANCELLED
        assert ctl.scan(ready[-1])["beep"] == "ok"
        assert mem_alloc(ctl) > 0
    finally:
        sim.kill()
