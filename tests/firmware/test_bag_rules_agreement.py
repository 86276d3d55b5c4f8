"""The handheld and the gateway refuse the same parcels with the same code, in the same order.

Each sample is a parcel and the open bag it is scanned into. The gateway judges it with
gateway/domain/bag_rules.py check_add; the handheld with its real bagging code in MicroPython
(firmware/app/bagging.py Bagging.on_scan, given the bag's state as a Handheld leaves it when
switching modes, its recent-parcel set on flash and the parcel's cache facts). Samples break
one rule, or two, so the order between the rules shows; every code of protocol/rules.py RULES
is covered.
"""

import json

from gateway.domain.bag_rules import BagFacts, ParcelFacts, check_add
from protocol import rules

BAG = "BS0000000001"
OPEN_TO_FM49 = ["SZ", "YW", "FM-49"]
FULL = [f"LZ{i:09d}CN" for i in range(rules.MAX_PARCELS)]

# What breaks each rule: changes to a good parcel ("parcel") and to its bag ("bag").
BREAK = {
    rules.DUPLICATE: {"bag": {"tracking_nos": ["LZ1", "TRK"], "hubs": ["SZ", "SZ"]}},
    rules.IN_OTHER_BAG: {"parcel": {"in_bag": "BS0000000777"}},
    rules.ALREADY_RECEIVED: {"parcel": {"status": "received"}},
    rules.CANCELLED: {"parcel": {"status": "cancelled"}},
    rules.NOT_RTS: {"parcel": {"status": "pending"}},
    rules.STORE_NOT_LINKED: {"parcel": {"seller_id": "S9"}},
    rules.HUB_NOT_BAGGABLE: {"parcel": {"hub": "HK"}},
    rules.SEA_BIG_ITEM: {"parcel": {"sea_big_item": True}},
    rules.FM49_MIX: {
        "parcel": {"hub": "FM-49"},
        "bag": {"tracking_nos": ["LZ1"], "hubs": ["SZ"], "baggable_hubs": OPEN_TO_FM49},
    },
    rules.BAG_FULL: {"bag": {"tracking_nos": FULL, "hubs": ["SZ"] * len(FULL)}},
    rules.OVERWEIGHT: {"bag": {"weight_g": rules.MAX_WEIGHT_G + 10}},
    rules.OVERSIZE: {"bag": {"dims_cm": [rules.MAX_SIDE_CM, 30, 30]}},
}


def sample(*codes, why=None):
    """A good parcel in a good bag, broken as BREAK says for each code."""
    parcel = {"tracking_no": "TRK", "seller_id": "S1", "status": "rts", "hub": "SZ"}
    bag = {"bag_no": BAG, "linked_seller_ids": ["S1", "S2"], "weight_g": 12_000}
    for code in codes:
        parcel |= BREAK[code].get("parcel", {})
        bag |= BREAK[code].get("bag", {})
    return {"why": why or " + ".join(codes), "parcel": parcel, "bag": bag}


# (sample, the code the manual's order gives), written out rather than derived from RULES.
SAMPLES = [
    (sample(why="a good parcel"), None),
    (sample(why="50.00 kg") | {"bag": sample()["bag"] | {"weight_g": 50_000}}, None),
    (sample(why="180 cm in all") | {"bag": sample()["bag"] | {"dims_cm": [60, 60, 60]}}, None),
    (sample(why="the 300th parcel") | {"bag": sample()["bag"] | {"tracking_nos": FULL[1:]}}, None),
    (
        sample(why="an FM-49 parcel into an FM-49 bag")
        | {
            "parcel": sample()["parcel"] | {"hub": "FM-49"},
            "bag": sample()["bag"]
            | {"tracking_nos": ["LZ1"], "hubs": ["FM-49"], "baggable_hubs": OPEN_TO_FM49},
        },
        None,
    ),  # fmt: skip
    *[(sample(code), code) for code in BREAK],
    # Two rules broken at once, each rule with the next one a parcel can break with it: the
    # first wins.
    (sample(rules.DUPLICATE, rules.ALREADY_RECEIVED), rules.DUPLICATE),
    (sample(rules.IN_OTHER_BAG, rules.ALREADY_RECEIVED), rules.IN_OTHER_BAG),
    (sample(rules.ALREADY_RECEIVED, rules.STORE_NOT_LINKED), rules.ALREADY_RECEIVED),
    (sample(rules.CANCELLED, rules.STORE_NOT_LINKED), rules.CANCELLED),
    (sample(rules.NOT_RTS, rules.STORE_NOT_LINKED), rules.NOT_RTS),
    (sample(rules.STORE_NOT_LINKED, rules.HUB_NOT_BAGGABLE), rules.STORE_NOT_LINKED),
    (sample(rules.HUB_NOT_BAGGABLE, rules.SEA_BIG_ITEM), rules.HUB_NOT_BAGGABLE),
    (sample(rules.SEA_BIG_ITEM, rules.FM49_MIX), rules.SEA_BIG_ITEM),
    (sample(rules.FM49_MIX, rules.BAG_FULL), rules.FM49_MIX),
    (sample(rules.BAG_FULL, rules.OVERWEIGHT), rules.BAG_FULL),
    (sample(rules.OVERWEIGHT, rules.OVERSIZE), rules.OVERWEIGHT),
    # And far apart: facts about the parcel come before the bag's limits.
    (sample(rules.SEA_BIG_ITEM, rules.OVERSIZE), rules.SEA_BIG_ITEM),
    (sample(rules.NOT_RTS, rules.BAG_FULL), rules.NOT_RTS),
    (sample(rules.IN_OTHER_BAG, rules.OVERWEIGHT), rules.IN_OTHER_BAG),
]


def gateway_code(s: dict) -> str | None:
    bag = dict(s["bag"])
    if bag.get("dims_cm") is not None:
        bag["dims_cm"] = tuple(bag["dims_cm"])
    return check_add(ParcelFacts(**s["parcel"]), BagFacts(**bag))


# The handheld's side: its Bagging mode on a Handheld stand-in that has what bagging reads.
HANDHELD = r"""
import json, os, struct
from app.bagging import Bagging
from app.parcels import RecentParcels, fingerprint


class Screen:
    code = None

    def refuse(self, title, code, detail=""):
        self.code = code

    def show(self, lines, beep=None, code=None):
        pass


class Journal:
    keep_from = 0
    last_seq = 0


class Handheld:
    def __init__(self, storage, s):
        parcel, bag = s["parcel"], s["bag"]
        self.storage = storage
        self.ui = Screen()
        self.journal = Journal()
        self.settings = {"bag_range": [1, 1000], "stores": bag["linked_seller_ids"]}
        if "baggable_hubs" in bag:
            self.settings["baggable_hubs"] = bag["baggable_hubs"]
        # As the Handheld keeps them while bagging is unloaded (app/workflow.py).
        trks = bag.get("tracking_nos", [])
        self.fps = bytearray(4 * 300)
        for i, trk in enumerate(trks):
            struct.pack_into("<I", self.fps, 4 * i, fingerprint(trk))
        hubs = bag.get("hubs", [])
        fm49 = len([h for h in hubs if h == "FM-49"])
        dims = bag.get("dims_cm")
        # As app/workflow.py keeps a bag left for another mode; False: not waiting for the
        # scale to go back to zero.
        self.left_bag = (bag["bag_no"], len(trks), fm49, len(hubs) - fm49, 0,
                         tuple(dims) if dims else None, 2, False)
        self.recent = RecentParcels(storage + "/recent")
        other = parcel.get("in_bag")
        if other is not None and other != bag["bag_no"]:  # a closed bag's parcel
            self.recent.add(struct.pack("<I", fingerprint(parcel["tracking_no"])), 1)
        self.weight_g = bag.get("weight_g")
        # The cache entry: [status, hub, seller, big], as the config message gives it.
        self.entry = (parcel["status"], parcel["hub"], parcel["seller_id"],
                      parcel.get("sea_big_item", False))

    def parcel_facts(self, trk):
        return self.entry

    def journal_ok(self, kind, **fields):
        return True


codes = []
for n, s in enumerate(json.load(open("samples.json"))):
    storage = "flash%d" % n
    os.mkdir(storage)
    hh = Handheld(storage, s)
    Bagging(hh).on_scan(s["parcel"]["tracking_no"])
    codes.append(hh.ui.code)
print(json.dumps(codes))
"""


# Rules no parcel breaks together: it is in this bag or in another; it has one status.
EXCLUSIVE = {
    (rules.DUPLICATE, rules.IN_OTHER_BAG),
    (rules.ALREADY_RECEIVED, rules.CANCELLED),
    (rules.ALREADY_RECEIVED, rules.NOT_RTS),
    (rules.CANCELLED, rules.NOT_RTS),
}


def test_the_samples_put_each_rule_before_the_next_it_can_meet():
    assert {code for _, code in SAMPLES} - {None} == set(rules.RULES)
    pairs = {tuple(s["why"].split(" + ")) for s, _ in SAMPLES}
    for i, first in enumerate(rules.RULES[:-1]):
        later = [code for code in rules.RULES[i + 1 :] if (first, code) not in EXCLUSIVE]
        assert (first, later[0]) in pairs, first


def test_handheld_and_gateway_give_the_manuals_code_for_every_sample(run_mpy, tmp_path):
    (tmp_path / "samples.json").write_text(json.dumps([s for s, _ in SAMPLES]))
    # A big heap: this test is about the verdicts, the memory test about the heap.
    handheld = json.loads(run_mpy(HANDHELD, heap="2M").stdout.strip().splitlines()[-1])
    for (s, expected), on_the_handheld in zip(SAMPLES, handheld, strict=True):
        assert (s["why"], on_the_handheld, gateway_code(s)) == (s["why"], expected, expected)
