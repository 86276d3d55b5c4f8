# The handheld's state machine (docs/firmware.md): bagging at the seller's warehouse.
# Every accepted action is appended to the journal before the OK beep.
import json

from app import clock, rules, store, wire
from app.journal import JournalFull

MODE_BAGGING = "bagging"

# Bag size presets (cm): the courier sacks we stock; "up"/"down" choose, shown on close.
SIZES = ((60, 40, 30), (80, 50, 40), (100, 50, 30))


class Handheld:
    def __init__(self, ui, journal, settings, boot, storage):
        self.ui = ui
        self.journal = journal
        self.settings = settings
        self.boot = boot
        self.mode = MODE_BAGGING
        self.bag = None  # bag number of the open bag
        self.parcels = set()  # tracking numbers in the open bag
        self.weight_g = None  # last stable weight on the scale
        self.size = 0
        self.on_record = None  # called after every journal append (the sync wakes up)
        self._serial_path = storage + "/next_serial"
        self.next_serial = int(store.read_or(self._serial_path, b"0")) or settings["bag_range"][0]
        self._recover()

    def _recover(self):
        """Rebuild the open bag from the journal after a restart or a power cut.

        The journal keeps every record of the open bag (keep_from) even once acknowledged,
        so the bag's parcels are all there; RAM holds one chunk of records at a time.
        """
        after = 0
        while True:
            chunk = self.journal.read(after, 4096)
            if not chunk:
                break
            for raw in chunk:
                rec = json.loads(raw)
                after = rec["s"]
                kind = rec["k"]
                if kind == "bag_open":
                    self.bag = rec["bag"]
                    self.parcels = set()
                    self.journal.keep_from = after
                    serial = wire.bag_serial(self.bag)
                    if serial is not None and serial >= self.next_serial:
                        self.next_serial = serial + 1
                elif kind == "parcel" and rec["bag"] == self.bag:
                    self.parcels.add(rec["trk"])
                elif kind == "parcel_remove" and rec["bag"] == self.bag:
                    self.parcels.discard(rec["trk"])
                elif kind == "bag_close" and rec["bag"] == self.bag:
                    self.bag = None
                    self.parcels = set()
                    self.journal.keep_from = 0

    def apply_config(self, msg):
        """Take the settings of a config message (docs/protocol.md); True if any changed."""
        changed = False
        bag_range = msg.get("bag_range")
        if isinstance(bag_range, list) and bag_range != self.settings.get("bag_range"):
            self.settings["bag_range"] = bag_range
            changed = True
        return changed

    def state(self):
        return {
            "mode": self.mode,
            "bag": self.bag,
            "bag_count": len(self.parcels),
            "weight_g": self.weight_g,
            "journal_depth": self.journal.depth,
        }

    def home(self):
        if self.bag is None:
            self.ui.show(("BAGGING", "", "Scan a parcel", "to open a bag"))
        else:
            self._show_bag("")

    def _show_bag(self, last, beep=None):
        weight = "" if self.weight_g is None else "%d.%02d kg" % divmod(self.weight_g // 10, 100)
        self.ui.show(
            (self.bag, "%d/%d" % (len(self.parcels), rules.MAX_PARCELS), last, weight), beep
        )

    def _record(self, kind, **fields):
        rec = {"b": self.boot, "t": clock.ticks(), "w": clock.wall(), "q": int(clock.synced)}
        rec["k"] = kind
        rec.update(fields)
        seq = self.journal.append(rec)
        if self.on_record is not None:
            self.on_record()
        return seq

    def _journal(self, kind, **fields):
        """Append, or show the full flash; False when nothing was written."""
        try:
            self._record(kind, **fields)
            return True
        except JournalFull:
            self.ui.refuse("NOT SAVED", "JOURNAL_FULL", "sync needed")
            return False

    # --- inputs --------------------------------------------------------------------------

    def on_bad_barcode(self):
        self.ui.refuse("SCAN REFUSED", rules.BAD_BARCODE)

    def on_scan(self, code):
        if self.mode == MODE_BAGGING:
            self._scan_parcel(code)

    def on_weight(self, grams):
        self.weight_g = grams
        if self.bag is None:
            return
        if not rules.weight_ok(grams):
            self.ui.refuse(self.bag, rules.OVERWEIGHT, "%d g" % grams)
        else:
            self._show_bag("")

    def on_key(self, key):
        if key == "ok" and self.bag is not None:
            self._close_bag()
        elif key in ("up", "down") and self.bag is not None:
            self.size = (self.size + (1 if key == "up" else -1)) % len(SIZES)
            self._show_bag("size %dx%dx%d" % SIZES[self.size])
        else:
            self.home()

    # --- bagging ---------------------------------------------------------------------------

    def _refusal(self, trk):
        if trk in self.parcels:
            return rules.DUPLICATE
        if len(self.parcels) >= rules.MAX_PARCELS:
            return rules.BAG_FULL
        return None

    def _scan_parcel(self, trk):
        title = self.bag or "BAGGING"
        code = self._refusal(trk)
        if code:
            self.ui.refuse(title, code, trk)
            return
        if self.bag is None and not self._open_bag():
            return
        if not self._journal("parcel", bag=self.bag, trk=trk):
            return
        self.parcels.add(trk)
        self._show_bag(trk, "ok")

    def _open_bag(self):
        lo, hi = self.settings["bag_range"]
        if not lo <= self.next_serial <= hi:
            self.ui.refuse("BAGGING", "BAG_RANGE_USED", "connect to sync")
            return False
        bag = wire.bag_number(self.next_serial)
        # The serial is stored first: a power cut after it wastes a number, never reuses one.
        store.write_atomic(self._serial_path, b"%d" % (self.next_serial + 1))
        self.journal.keep_from = self.journal.last_seq + 1
        if not self._journal("bag_open", bag=bag):
            self.journal.keep_from = 0
            return False
        self.bag = bag
        self.next_serial += 1
        self.parcels = set()
        return True

    def _close_bag(self):
        if not self.parcels:
            self.ui.refuse(self.bag, "NO_PARCELS")
            return
        if self.weight_g is None or self.weight_g <= 0:
            self.ui.refuse(self.bag, "NO_WEIGHT")
            return
        if not rules.weight_ok(self.weight_g):
            self.ui.refuse(self.bag, rules.OVERWEIGHT, "%d g" % self.weight_g)
            return
        dims = SIZES[self.size]
        if not rules.size_ok(dims):
            self.ui.refuse(self.bag, rules.OVERSIZE)
            return
        ok = self._journal(
            "bag_close", bag=self.bag, n=len(self.parcels), g=self.weight_g, dims=list(dims)
        )
        if not ok:
            return
        closed = self.bag
        self.bag = None
        self.parcels = set()
        self.journal.keep_from = 0
        self.ui.show(("CLOSED", closed, "", "Scan next parcel"), "ok")
