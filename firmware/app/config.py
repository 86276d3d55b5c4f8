# Taking the gateway's config message (docs/firmware.md, "Config"): the settings, and the
# parcel and bag indexes rewritten on flash. Loaded only while a message is applied
# (Handheld.apply_config) and dropped again, so this code does not stay in the heap.
import binascii
import json
import os

from micropython import const

from app.parcels import BUCKETS, fingerprint
from app.store import read_or, remove_if_exists, write_atomic

_DIGEST = const("digest")  # count and checksum of the entries an index holds
# Config keys kept in settings (config.json); "parcels" and "bags" go to flash indexes.
_SETTINGS = const(
    (
        "bag_range",
        "stores",
        "store_names",
        "unknown_parcel",
        "drivers",
        "arrival_tolerance_g",
        "arrival_tolerance_pct",
        "baggable_hubs",
    )
)


def apply(hh, msg):
    """Take a config message, or a provisioning config.json that carries parcels or bags;
    if the settings changed, config.json is rewritten, so the device works offline after a
    restart."""
    parcels = msg.get("parcels")
    if isinstance(parcels, dict):
        good = {}
        for trk in parcels:
            facts = parcels[trk]
            if isinstance(facts, list) and len(facts) == 4:
                good[trk] = facts
        _replace(hh.parcels.dir, good, parcel_text)
    bags = msg.get("bags")
    if isinstance(bags, dict):
        _replace(hh.bags.dir, bags, str)
    changed = False
    if msg is hh.settings:  # provisioning: the indexes are on flash now, not in settings
        msg.pop("parcels", None)
        msg.pop("bags", None)
        changed = True
    for key in _SETTINGS:
        if key in msg and msg[key] != hh.settings.get(key):
            hh.settings[key] = msg[key]
            changed = True
    if changed:
        write_atomic(hh.storage + "/config.json", json.dumps(hh.settings).encode())


def parcel_text(facts):
    """Config value ["status", "hub", "seller", big] as one bucket line value."""
    return "%s\t%s\t%s\t%d" % (facts[0], facts[1], facts[2], 1 if facts[3] else 0)


def _replace(directory, items, encode):
    """Write {key: value} (value turned into text by encode) as the FlashIndex in directory;
    False if nothing changed."""
    digest = 0
    for key in items:
        digest = (digest + binascii.crc32(encode(items[key]).encode(), fingerprint(key))) & (
            0xFFFFFFFF
        )
    mark = b"%d %d\n" % (len(items), digest)
    if read_or(directory + "/" + _DIGEST) == mark:
        return False
    # The mark goes first and last: a power cut in between leaves no mark, so the next
    # config rewrites everything; each bucket is old or new, never torn (store.py).
    remove_if_exists(directory + "/" + _DIGEST)
    for b in range(BUCKETS):
        tmp = directory + "/%d.tmp" % b
        f = open(tmp, "wb")
        try:
            for key in items:
                if "\t" in key or "\n" in key or fingerprint(key) % BUCKETS != b:
                    continue
                f.write(key.encode())
                f.write(b"\t")
                f.write(encode(items[key]).encode())
                f.write(b"\n")
            f.flush()
        finally:
            f.close()
        os.rename(tmp, directory + "/%d" % b)
    write_atomic(directory + "/" + _DIGEST, mark)
    return True
