"""The base parcel index (issue 16): the gateway builds it and cuts it into pages
(protocol/config_schema.py), the handheld takes the pages through its config path and looks
parcels up in what it wrote (firmware/app/index_pages.py, app/parcels.py), in MicroPython.
Every parcel answers with its own facts, a parcel the index lacks answers None, and a delta
after the index sets one entry."""

import json
from collections import Counter

import pytest

from protocol import config_schema, wire

# The handheld's side: each page given to app/config.py apply as app/sync.py does, bytes up to
# 256 bytes, else the file the MQTT client spooled it to, on a Handheld stand-in.
HANDHELD = r"""
import json, os
from app import config
from app.parcels import FlashIndex, parse_parcel


class Handheld:
    pass


hh = Handheld()
hh.storage = "flash"
os.mkdir(hh.storage)
hh.settings = {"s": 7}
hh.parcels = FlashIndex(hh.storage + "/parcels")
hh.bags = FlashIndex(hh.storage + "/bags")
taken = []
for name in sorted(os.listdir("pages")):
    with open("pages/" + name, "rb") as f:
        small = f.read(257)
        taken.append(config.apply(hh, small if len(small) <= 256 else f))
if "delta.json" in os.listdir():
    config.apply(hh, open("delta.json", "rb").read())
print(json.dumps({"taken": taken, "n": hh.settings.get("n")}))
for trk in json.load(open("asked.json")):
    print(json.dumps(parse_parcel(hh.parcels.get(trk))))
"""

STATUSES = ("pending", "rts", "cancelled", "received")


def parcels(count: int, sellers: int) -> dict[str, list]:
    return {
        f"LZ{i:09d}CN": config_schema.parcel_entry(
            STATUSES[i % 4], config_schema.HUBS[i % 5], f"S{i % sellers}", i % 7 == 0
        )
        for i in range(count)
    }


def on_the_handheld(run_mpy, tmp_path, pages, asked, delta=None) -> dict:
    (tmp_path / "pages").mkdir()
    for k, page in enumerate(pages):
        (tmp_path / "pages" / f"{k:04d}.json").write_bytes(page)
    (tmp_path / "asked.json").write_text(json.dumps(asked))
    if delta is not None:
        (tmp_path / "delta.json").write_bytes(json.dumps(delta).encode())
    lines = run_mpy(HANDHELD, heap="1M", timeout=120).stdout.strip().splitlines()
    kept = json.loads(lines[-1 - len(asked)])
    kept["facts"] = [json.loads(line) for line in lines[len(lines) - len(asked) :]]
    return kept


def facts(entry):
    status, hub, seller, big = entry
    return [status, hub, seller, big == 1]


# 40 sellers: over 256 entries, numbered in 2 bytes; past WIDE_FINGERPRINT_MAX (made 0 here,
# where 50,000 parcels are too many for the test) fingerprints of 2 bytes.
@pytest.mark.parametrize("sellers", [3, 40])
@pytest.mark.parametrize("wide_max", [config_schema.WIDE_FINGERPRINT_MAX, 0])
def test_every_parcel_of_a_paged_index_answers_its_own_facts(
    run_mpy, tmp_path, monkeypatch, sellers, wide_max
):
    monkeypatch.setattr(config_schema, "WIDE_FINGERPRINT_MAX", wide_max)
    sent = parcels(6_000, sellers)
    index = config_schema.index_file(sent)
    _, width, _, buckets, _ = config_schema.INDEX_HEADER.unpack_from(index)
    assert width == (3 if wide_max else 2)
    # Numbers sharing a bucket and fingerprint are left out (none at 3 bytes, a pair or so
    # at 2): the handheld does not know them.
    slot = {}
    for t in sent:
        key, fp = config_schema.index_key(t, width)
        slot[t] = (key % buckets, fp)
    shared = Counter(slot.values())
    alone = {t for t in sent if shared[slot[t]] == 1}
    assert len(alone) > len(sent) - 10
    pages = config_schema.index_pages(7, index)
    assert len(pages) > 1
    assert all(len(p) <= wire.MAX_MESSAGE for p in pages)
    assert all(config_schema.page_error(json.loads(p)) is None for p in pages)
    asked = [*sent, "LZ999999999CN", "XX1"]
    kept = on_the_handheld(run_mpy, tmp_path, pages, asked)
    # Nothing until the last page; then the status goes out with the index's size.
    assert kept["taken"] == [None] * (len(pages) - 1) + [True]
    assert kept["n"] == len(alone)
    expected = [facts(e) if t in alone else None for t, e in sent.items()]
    assert kept["facts"] == expected + [None, None]


def test_a_page_small_enough_to_come_as_bytes_is_taken(run_mpy, tmp_path):
    sent = parcels(3, 1)
    pages = config_schema.index_pages(7, config_schema.index_file(sent))
    assert len(pages) == 1 and len(pages[0]) <= 256
    kept = on_the_handheld(run_mpy, tmp_path, pages, list(sent))
    assert kept["taken"] == [True]
    assert kept["facts"] == [facts(e) for e in sent.values()]


def test_a_delta_after_the_index_sets_one_entry(run_mpy, tmp_path):
    sent = parcels(3_000, 3)
    pages = config_schema.index_pages(7, config_schema.index_file(sent))
    delta = {"v": 1, "time": 1_800_000_000, "s": 8, "b": 7}
    delta["parcels"] = {"LZ000000001CN": config_schema.parcel_entry("received", "SZ", "S1", 0)}
    assert config_schema.delta_error(delta) is None
    kept = on_the_handheld(
        run_mpy, tmp_path, pages, ["LZ000000001CN", "LZ000000002CN"], delta=delta
    )
    assert kept["facts"] == [["received", "SZ", "S1", False], facts(sent["LZ000000002CN"])]


def test_pages_out_of_turn_or_damaged_leave_no_index(run_mpy, tmp_path):
    sent = parcels(6_000, 3)
    pages = config_schema.index_pages(7, config_schema.index_file(sent))
    assert len(pages) == 3
    damaged = json.loads(pages[-1])
    damaged["index"][2] ^= 1  # the CRC the gateway computed does not match what came
    damaged = json.dumps(damaged, separators=(",", ":")).encode()
    given = [pages[0], pages[2], pages[1], damaged]
    kept = on_the_handheld(run_mpy, tmp_path, given, ["LZ000000002CN"])
    assert kept["taken"] == [None] * len(given)
    assert kept["facts"] == [None]


def test_an_index_older_than_the_handhelds_config_is_not_started(run_mpy, tmp_path):
    pages = config_schema.index_pages(6, config_schema.index_file(parcels(100, 1)))
    kept = on_the_handheld(run_mpy, tmp_path, pages, ["LZ000000002CN"])
    assert kept["taken"] == [None] and kept["facts"] == [None]


def test_tracking_numbers_that_share_a_bucket_and_fingerprint_are_left_out():
    sent = parcels(50, 1)
    buckets = config_schema.INDEX_HEADER.unpack_from(config_schema.index_file(sent))[3]
    assert buckets == (len(sent) + 2) // config_schema.INDEX_BUCKET_MEAN + 1
    seen: dict = {}
    for i in range(1_000_000):  # ~12,000 tries find two in 4 buckets x 2^24 fingerprints
        key, fp = config_schema.index_key(f"C{i}")
        if (key % buckets, fp) in seen:
            clash = [seen[(key % buckets, fp)], f"C{i}"]
            break
        seen[(key % buckets, fp)] = f"C{i}"
    index = config_schema.index_file(sent | {t: ["rts", "SZ", "S0", 0] for t in clash})
    magic, width, n, _, _ = config_schema.INDEX_HEADER.unpack_from(index)
    assert (magic, width, n) == (config_schema.INDEX_MAGIC, 3, len(sent))
