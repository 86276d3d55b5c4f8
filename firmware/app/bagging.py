# Bagging at the seller's warehouse (domain.md, "Bagging"): scan parcels into the open bag,
# weigh it, choose or measure its size, close it. Refusals follow the gateway's order
# (gateway/domain/bag_rules.py RULES) with the same codes (app/rules.py).
import json
import struct

from micropython import const

from app import rules, store, wire
from app.parcels import fingerprint

# Bag size presets (cm): the courier sacks we stock; "up"/"down" choose, shown on close.
_SIZES = const(((60, 40, 30), (80, 50, 40), (100, 50, 30)))
_FP = const("<I")
_READ_BYTES = const(2048)  # journal page while rebuilding the bag (RAM: one page)
_MAX_SIDE_INPUT = const(999)  # cm; a DIM: code beyond this is a misread


class Bagging:
    def __init__(self, hh):
        self.hh = hh
        # Fingerprints (app/parcels.py) of the open bag's parcels, in scan order (the
        # Handheld's array, kept while bagging is unloaded).
        self.fps = hh.fps
        self.recent = hh.recent
        self._serial_path = hh.storage + "/next_serial"
        if hh.left_bag is not None:  # back from another mode: the bag is as it was left
            (self.bag, self.n, self.fm49, self.other) = hh.left_bag[:4]
            (self.size, self.dims, self.next_serial) = hh.left_bag[4:]
            return
        self.bag = None  # bag number of the open bag
        self.n = 0  # parcels in it
        self.fm49 = 0  # parcels in the bag bound for FM-49, and for other hubs (FM49_MIX)
        self.other = 0
        self.size = 0  # the size preset
        self.dims = None  # measured sides (DIM: code), which override the preset
        first = hh.settings["bag_range"][0]
        self.next_serial = int(store.read_or(self._serial_path, b"0")) or first
        # Rebuild the open bag from the journal after a restart or a power cut: the journal
        # keeps every record of the open bag (keep_from) even once acknowledged.
        journal = hh.journal
        for rec in self._records(0):
            kind = rec["k"]
            if kind == "bag_open":
                self._reset(rec["bag"])
                journal.keep_from = rec["s"]
                serial = wire.bag_serial(self.bag)
                if serial is not None and serial >= self.next_serial:
                    self.next_serial = serial + 1
            elif rec.get("bag") != self.bag or self.bag is None:
                continue
            elif kind == "parcel":
                self._add(rec["trk"], hh.parcel_facts(rec["trk"]))
            elif kind == "parcel_remove":
                self._remove(rec["trk"])
            elif kind == "bag_close":
                self._reset(None)
                journal.keep_from = 0

    # --- the open bag ------------------------------------------------------------------

    def _reset(self, bag):
        self.bag = bag
        self.n = 0
        self.fm49 = 0
        self.other = 0

    def _find(self, fp):
        """Index of fp among the bag's parcels, or -1."""
        needle = struct.pack(_FP, fp)
        at = self.fps.find(needle, 0, 4 * self.n)
        while at >= 0 and at & 3:
            at = self.fps.find(needle, at + 1, 4 * self.n)
        return at // 4 if at >= 0 else -1

    def _count_hub(self, facts, step):
        if facts is None:
            return  # unknown to the cache: its hub does not count for FM49_MIX
        if facts[1] == rules.FM49:
            self.fm49 += step
        else:
            self.other += step

    def _add(self, trk, facts):
        """Put trk, with its cache facts (parcel_facts), into the open bag."""
        struct.pack_into(_FP, self.fps, 4 * self.n, fingerprint(trk))
        self.n += 1
        self._count_hub(facts, 1)

    def _remove(self, trk):
        i = self._find(fingerprint(trk))
        if i < 0:
            return
        fps = self.fps
        fps[4 * i : 4 * (self.n - 1)] = fps[4 * (i + 1) : 4 * self.n]
        self.n -= 1
        self._count_hub(self.hh.parcel_facts(trk), -1)

    def _records(self, after):
        """The journal's records after seq `after`, one page in RAM at a time."""
        journal = self.hh.journal
        while True:
            page = journal.read(after, _READ_BYTES)
            if not page:
                return
            for raw in page:
                rec = json.loads(raw)
                after = rec["s"]
                yield rec

    # --- screen ----------------------------------------------------------------------------

    def describe(self, st):
        st["bag"] = self.bag
        st["bag_count"] = self.n
        st["size"] = list(self._dims())

    def _dims(self):
        return self.dims or _SIZES[self.size]

    def home(self):
        if self.bag is None:
            self.hh.ui.show(("BAGGING", "", "Scan a parcel", "to open a bag"))
        else:
            self._show("")

    def _show(self, last, beep=None):
        w = self.hh.weight_g
        weight = "" if w is None else "%d.%02d kg" % divmod(w // 10, 100)
        size = ("DIM " if self.dims else "") + "%dx%dx%d" % self._dims()
        self.hh.ui.show((self.bag, "%d/%d" % (self.n, rules.MAX_PARCELS), last, weight, size), beep)

    # --- inputs ----------------------------------------------------------------------------

    def on_scan(self, code):
        if code.startswith("DIM:"):
            self._measure(code)
        elif code[:4] in ("DRV:", "PIN:") or not wire.text_ok(code):
            self.hh.on_bad_barcode()
        else:
            self._scan_parcel(code)

    def on_weight(self, grams):
        if self.bag is None:
            self.hh.ui.show(("BAGGING", "", "Scan a parcel", "%d g" % grams))
            return
        if not rules.weight_ok(grams):
            self.hh.ui.refuse(self.bag, rules.OVERWEIGHT, "%d g" % grams)
        elif grams > 0 and self.hh.journal_ok("weigh", bag=self.bag, g=grams):
            self._show("weighed", "ok")

    def on_key(self, key):
        if self.bag is None:
            if key in ("up", "down"):
                self._choose_size(key)
            else:
                self.home()
        elif key == "ok":
            self._close()
        elif key == "cancel":  # takes the last parcel out again
            if not self.n:
                self._show("bag is empty", None)
                return
            # The last parcel's tracking number, read back from the journal.
            want = struct.unpack_from(_FP, self.fps, 4 * (self.n - 1))[0]
            trk = None
            for rec in self._records(self.hh.journal.keep_from - 1):
                if rec["k"] == "parcel" and rec["bag"] == self.bag:
                    if fingerprint(rec["trk"]) == want:
                        trk = rec["trk"]
            if trk is None or not self.hh.journal_ok("parcel_remove", bag=self.bag, trk=trk):
                return
            self._remove(trk)
            self._show("-" + trk, "warn")  # minus: taken out
        elif key in ("up", "down"):
            self._choose_size(key)

    def _choose_size(self, key):
        self.dims = None
        self.size = (self.size + (1 if key == "up" else -1)) % len(_SIZES)
        if self.bag is None:
            self.hh.ui.show(("BAGGING", "size", "%dx%dx%d" % _SIZES[self.size]))
        else:
            self._show("size")

    def _measure(self, code):
        """DIM:<a>x<b>x<c>: the bag's measured sides in whole cm, e.g. DIM:120x30x20."""
        parts = code[4:].split("x")
        dims = []
        for p in parts:
            if p.isdigit() and 0 < int(p) <= _MAX_SIDE_INPUT:
                dims.append(int(p))
        if len(parts) != 3 or len(dims) != 3:
            self.hh.on_bad_barcode()
            return
        self.dims = dims = tuple(dims)
        title = self.bag or "BAGGING"
        if not rules.size_ok(dims):
            self.hh.ui.refuse(title, rules.OVERSIZE, "%dx%dx%d cm" % dims)
        elif self.bag is None:
            self.hh.ui.show((title, "size", "%dx%dx%d" % dims), "ok")
        else:
            self._show("measured", "ok")

    # --- the rules -------------------------------------------------------------------------

    def _refusal(self, fp, facts):
        """The first rule that refuses the parcel with fingerprint fp and cache facts
        (parcel_facts), in bag_rules.RULES order, or None."""
        if self._find(fp) >= 0:
            return rules.DUPLICATE
        if self.recent.contains(fp):
            return rules.IN_OTHER_BAG
        settings = self.hh.settings
        if facts is None:
            # Unknown to the cache: the setting decides (manual: "not RTS, or data error").
            if settings.get("unknown_parcel") == "refuse":
                return rules.NOT_RTS
        else:
            status, hub, seller, big = facts
            if status == "received":
                return rules.ALREADY_RECEIVED
            if status == "cancelled":
                return rules.CANCELLED
            if status != "rts":
                return rules.NOT_RTS
            stores = settings.get("stores")
            linked = stores is None  # not configured yet: the gateway re-checks
            for s in stores or ():
                if (s if isinstance(s, str) else s[0]) == seller:
                    linked = True
            if not linked:
                return rules.STORE_NOT_LINKED
            if hub not in settings.get("baggable_hubs", rules.BAGGABLE_HUBS):
                return rules.HUB_NOT_BAGGABLE
            if big:
                return rules.SEA_BIG_ITEM
            if (self.other if hub == rules.FM49 else self.fm49) > 0:
                return rules.FM49_MIX
        if self.n >= rules.MAX_PARCELS:
            return rules.BAG_FULL
        w = self.hh.weight_g
        if self.bag is not None and w is not None and not rules.weight_ok(w):
            return rules.OVERWEIGHT
        if self.dims and not rules.size_ok(self.dims):
            return rules.OVERSIZE
        return None

    def _scan_parcel(self, trk):
        fp = fingerprint(trk)
        # Read from flash once a scan: the rules and the FM-49 counts both need them.
        facts = self.hh.parcel_facts(trk)
        code = self._refusal(fp, facts)
        if code:
            self.hh.ui.refuse(self.bag or "BAGGING", code, trk)
            return
        hh = self.hh
        if self.bag is None:  # the first parcel opens a bag with the range's next number
            lo, hi = hh.settings["bag_range"]
            if not lo <= self.next_serial <= hi:
                hh.ui.refuse("BAGGING", "BAG_RANGE_USED", "connect to sync")
                return
            bag = wire.bag_number(self.next_serial)
            # The serial is stored first: a power cut after it wastes a number, never reuses one.
            store.write_atomic(self._serial_path, b"%d" % (self.next_serial + 1))
            hh.journal.keep_from = hh.journal.last_seq + 1
            if not hh.journal_ok("bag_open", bag=bag):
                hh.journal.keep_from = 0
                return
            self._reset(bag)
            self.next_serial += 1
        if not hh.journal_ok("parcel", bag=self.bag, trk=trk):
            return
        self._add(trk, facts)
        self._show(trk, "ok")

    def _close(self):
        hh = self.hh
        w = hh.weight_g
        code = None
        if not self.n:
            code = "NO_PARCELS"
        elif w is None or w <= 0:
            code = "NO_WEIGHT"
        elif not rules.weight_ok(w):
            code = rules.OVERWEIGHT
        elif not rules.size_ok(self._dims()):
            code = rules.OVERSIZE
        if code:
            hh.ui.refuse(self.bag, code)
            return
        if not hh.journal_ok("bag_close", bag=self.bag, n=self.n, g=w, dims=list(self._dims())):
            return
        closed = self.bag
        # Best effort after the record: a power cut right here leaves this bag out of the
        # recent set; the gateway's re-check still finds IN_OTHER_BAG.
        self.recent.add(self.fps, self.n)
        self._reset(None)
        self.dims = None
        hh.journal.keep_from = 0
        hh.ui.show(("CLOSED", closed, "", "Scan next parcel"), "ok")
