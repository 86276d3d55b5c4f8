# Bagging at the seller's warehouse (docs/domain.md, "Bagging"): scan parcels into the open bag,
# weigh it, choose or measure its size, close it. A scan is refused by the bag rules the
# gateway re-checks too: their order and codes are protocol/rules.py's (RULES, refusal).
import json
import struct

from micropython import const

from app import flashfile
from protocol import rules, wire
from app.parcels import fingerprint
from app.ui import reason

# Bag size presets (cm): the courier sacks we stock; "up"/"down" choose, shown on close.
_SIZES = const(((60, 40, 30), (80, 50, 40), (100, 50, 30)))
_FP = const("<I")
_READ_BYTES = const(2048)  # journal page while rebuilding the bag (RAM: one page)
_MAX_SIDE_INPUT = const(999)  # cm; a DIM: code beyond this is a misread
_UNCHECKED = const("unchecked")  # under a parcel accepted that nobody could check
# A settled empty scale reads within its tolerance (drivers/scale.py tolerance_g, 20 g; below
# -20 g it refuses SCALE_UNDERLOAD): "near zero", the previous bag lifted off.
_NEAR_ZERO_G = const(20)
# Bagging's rarer screen texts of over 10 characters in one string, split when one is shown:
# each string constant costs ~64 bytes of heap while bagging is loaded (measured on the unix
# port), and shorter ones are interned names (docs/firmware.md, "Few interned names"). Not
# the texts of the screens shown most, nor the closed bag's, which stays while pickup loads.
_TEXTS = const(
    "empty the scale|over by %d g|over by %d cm|side under 120|3 sides max 180"
    "|bag is empty|connect to sync"
)
_EMPTY_FIRST = const(0)  # the weight on the scale is the bag closed last's
_OVER_G = const(1)
_OVER_CM = const(2)
_SIDE_LIMIT = const(3)  # rules.MAX_SIDE_CM
_SUM_LIMIT = const(4)  # rules.MAX_SIDES_SUM_CM
_EMPTY_BAG = const(5)
_CONNECT = const(6)


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
            (self.size, self.dims, self.next_serial, waiting) = hh.left_bag[4:]
            # The scale may have gone back to zero in the other mode.
            self.waiting = waiting and abs(hh.weight_g or 0) > _NEAR_ZERO_G
            return
        # True from a close until the scale reads near zero: a new bag needs a weighing of
        # its own, and the weight still on the scale is the bag just closed. After a restart
        # the first weight counts (which bag is on the scale is not known).
        self.waiting = False
        self.bag = None  # bag number of the open bag
        self.n = 0  # parcels in it
        self.fm49 = 0  # parcels in the bag bound for FM-49, and for other hubs (FM49_MIX)
        self.other = 0
        self.size = 0  # the size preset
        self.dims = None  # measured sides (DIM: code), which override the preset
        first = hh.settings["bag_range"][0]
        self.next_serial = int(flashfile.read_or(self._serial_path, b"0")) or first
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
                self.add(rec["trk"], hh.parcel_facts(rec["trk"]))
            elif kind == "parcel_remove":
                self.remove(rec["trk"])
            elif kind == "bag_close":
                self._reset(None)
                journal.keep_from = 0

    # --- the open bag ------------------------------------------------------------------
    # find, add, remove, show and close: names interned already (methods of lists, sets and
    # files, Ui.show), where private names would be new ones, kept for good (docs/firmware.md,
    # "Few interned names").

    def _reset(self, bag):
        self.bag = bag
        self.n = 0
        self.fm49 = 0
        self.other = 0

    def find(self, fp):
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

    def add(self, trk, facts):
        """Put trk, with its cache facts (parcel_facts), into the open bag."""
        struct.pack_into(_FP, self.fps, 4 * self.n, fingerprint(trk))
        self.n += 1
        self._count_hub(facts, 1)

    def remove(self, trk):
        i = self.find(fingerprint(trk))
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
            self.show("")

    def show(self, last, beep=None, detail=None):
        w = self.hh.weight_g
        weight = "" if w is None else "%d.%02d kg" % divmod(w // 10, 100)
        if self.waiting:
            weight = _TEXTS.split("|")[_EMPTY_FIRST]
        size = ("DIM " if self.dims else "") + "%dx%dx%d" % self._dims()
        lines = (self.bag, "%d/%d" % (self.n, rules.MAX_PARCELS), last, weight, size)
        self.hh.ui.show(lines + (detail,) if detail else lines, beep)

    # --- inputs ----------------------------------------------------------------------------

    def on_scan(self, code):
        if code.startswith("DIM:"):
            self._measure(code)
        elif code[:4] in ("DRV:", "PIN:") or not wire.text_ok(code):
            self.hh.on_bad_barcode()
        else:
            return self._scan_parcel(code)

    def on_weight(self, grams):
        if abs(grams) <= _NEAR_ZERO_G:
            self.waiting = False  # the bag closed last is off the scale
        if self.bag is None:
            hint = _TEXTS.split("|")[_EMPTY_FIRST] if self.waiting else "Scan a parcel"
            self.hh.ui.show(("BAGGING", "", hint, "%d g" % grams))
        elif self.waiting or grams <= _NEAR_ZERO_G:
            self.show("")  # not this bag's weight: the bag closed last's, or an empty scale
        elif not rules.weight_ok(grams):  # "too heavy": the limit, and by how much
            over = _TEXTS.split("|")[_OVER_G] % (grams - rules.MAX_WEIGHT_G)
            self.hh.ui.refuse(self.bag, rules.OVERWEIGHT, over)
        elif self.hh.journal_ok("weigh", bag=self.bag, g=grams):
            self.show("weighed", "ok")

    def on_key(self, key):
        if self.bag is None:
            if key in ("up", "down"):
                self._choose_size(key)
            else:
                self.home()
        elif key == "ok":
            self.close()
        elif key == "cancel":  # takes the last parcel out again
            if not self.n:
                self.show(_TEXTS.split("|")[_EMPTY_BAG], None)
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
            self.remove(trk)
            self.show("-" + trk, "warn")  # minus: taken out
        elif key in ("up", "down"):
            self._choose_size(key)

    def _choose_size(self, key):
        self.dims = None
        self.size = (self.size + (1 if key == "up" else -1)) % len(_SIZES)
        if self.bag is None:
            self.hh.ui.show(("BAGGING", "size", "%dx%dx%d" % _SIZES[self.size]))
        else:
            self.show("size")

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
        dims = tuple(dims)
        title = self.bag or "BAGGING"
        if not rules.size_ok(dims):
            # Refused, and not the bag's size: the size in force stays. "Too big" says which
            # limit (docs/domain.md, "Limits of one bag") and by how much.
            texts = _TEXTS.split("|")
            side = max(dims)
            if side >= rules.MAX_SIDE_CM:
                limit, over = texts[_SIDE_LIMIT], side - rules.MAX_SIDE_CM + 1
            else:
                limit, over = texts[_SUM_LIMIT], sum(dims) - rules.MAX_SIDES_SUM_CM
            lines = (title, reason(rules.OVERSIZE), limit, texts[_OVER_CM] % over)
            self.hh.ui.show(lines, "error", rules.OVERSIZE)
            return
        self.dims = dims
        if self.bag is None:
            self.hh.ui.show((title, "size", "%dx%dx%d" % dims), "ok")
        else:
            self.show("measured", "ok")

    def _scan_parcel(self, trk, facts=...):
        """Answer a parcel scan. facts: ... to look it up; else the gateway's answer (the sync's
        request calls back with it): facts, None (unknown there too) or False (no answer)."""
        hh = self.hh
        cached = facts is ...
        if cached:
            # Read from flash once a scan: the rules and the FM-49 counts both need them.
            facts = hh.parcel_facts(trk)
            if facts is None:  # not in the cache: asked for online, answered when it comes
                if hh.request is not None:
                    return hh.request(trk, self._scan_parcel)
                facts = False
        elif hh.bagging is not self:
            return  # the mode key was pressed while the gateway answered: the scan is lost
        # Nobody checked it: unknown_parcel decides, the screen says so, and the gateway's
        # re-check at sync holds it out of the bag if it refuses it (docs/firmware.md).
        unchecked = facts is False
        if unchecked:
            facts = None
        fp = fingerprint(trk)
        # A weight counts once a bag is open, and once it is this bag's own.
        w = hh.weight_g if self.bag is not None and not self.waiting else None
        code = rules.refusal(
            self.find(fp) >= 0,
            self.recent.contains(fp),  # the parcels of the last closed bags
            facts,
            hh.settings,
            self.n,
            self.fm49,
            self.other,
            w,
            self.dims,
        )
        if code:
            hh.ui.refuse(self.bag or "BAGGING", code, trk)
            return
        if self.bag is None:  # the first parcel opens a bag with the range's next number
            lo, hi = hh.settings["bag_range"]
            if not lo <= self.next_serial <= hi:
                hh.ui.refuse("BAGGING", rules.BAG_RANGE_USED, _TEXTS.split("|")[_CONNECT])
                return
            bag = wire.bag_number(self.next_serial)
            # The serial is stored first: a power cut after it wastes a number, never reuses one.
            flashfile.write_atomic(self._serial_path, b"%d" % (self.next_serial + 1))
            hh.journal.keep_from = hh.journal.last_seq + 1
            if not hh.journal_ok("bag_open", bag=bag):
                hh.journal.keep_from = 0
                return
            self._reset(bag)
            self.next_serial += 1
        if not hh.journal_ok("parcel", bag=self.bag, trk=trk):
            return
        # The FM-49 counts take the cache's facts only: a removal and a restart read them there.
        self.add(trk, facts if cached else None)
        self.show(trk, "ok", _UNCHECKED if unchecked else None)

    def close(self):
        hh = self.hh
        w = hh.weight_g
        code = None
        detail = ""
        # The size in force is always allowed: a refused DIM: code never becomes it.
        if not self.n:
            code = rules.NO_PARCELS
        elif self.waiting or w is None or w <= _NEAR_ZERO_G:  # not on the scale
            code = rules.NO_WEIGHT
            if self.waiting:
                detail = _TEXTS.split("|")[_EMPTY_FIRST]
        elif not rules.weight_ok(w):
            code = rules.OVERWEIGHT
            detail = _TEXTS.split("|")[_OVER_G] % (w - rules.MAX_WEIGHT_G)
        if code:
            hh.ui.refuse(self.bag, code, detail)
            return
        if not hh.journal_ok("bag_close", bag=self.bag, n=self.n, g=w, dims=list(self._dims())):
            return
        closed = self.bag
        # Best effort after the record: a power cut right here leaves this bag out of the
        # recent set; the gateway's re-check still finds IN_OTHER_BAG.
        self.recent.add(self.fps, self.n)
        self._reset(None)
        self.dims = None
        self.waiting = True  # until this bag is lifted off the scale
        hh.journal.keep_from = 0
        # The manual's next steps ("商家组包-创建大包", docs/domain.md "Bagging"): print the bag
        # label, seal the bag with a cable tie, the label on the tie's tag.
        hh.ui.show(("CLOSED", closed, "Print the label", "Seal: cable tie"), "ok")
