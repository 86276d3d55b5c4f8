# Rebuilding the open bag from the journal at boot (app/bagging.py), loaded for the call only:
# the journal keeps every record of the open bag (keep_from) even once acknowledged.
from app import wire


def rebuild(b):
    """Replay the journal into the Bagging b: its open bag, and the next bag serial."""
    hh = b.hh
    journal = hh.journal
    for rec in b._records(0):
        kind = rec["k"]
        if kind == "bag_open":
            b._reset(rec["bag"])
            journal.keep_from = rec["s"]
            serial = wire.bag_serial(b.bag)
            if serial is not None and serial >= b.next_serial:
                b.next_serial = serial + 1
        elif rec.get("bag") != b.bag or b.bag is None:
            continue
        elif kind == "parcel":
            b._add(rec["trk"], hh.parcel_facts(rec["trk"]))
        elif kind == "parcel_remove":
            b._remove(rec["trk"])
        elif kind == "bag_close":
            b._reset(None)
            journal.keep_from = 0
