# Courier pickup at the seller's door (docs/domain.md, "Pickup and handover"): the driver signs in
# with badge + PIN, scans each bag label (that scan's time is the bag's legal pickup time),
# sees the seller's bags still to scan (the manual: bags bagged but not scanned count against
# the seller), may refuse any bag, scanned or not there, with one of the manual's reasons, and
# closes a signed handover. Only real bags count: what is not a bag number, or a bag still open
# here, is refused; a bag neither of this handheld nor in its config is counted with a warning
# (docs/firmware.md, "Courier pickup").
# Loaded only while the mode is pickup (app/workflow.py); app/signing.py only while a PIN
# is tried or a handover signed, app/door_receipt.py only while the handover's receipt is
# drawn.
from micropython import const

import lazy
from app import clock, flashfile
from app.parcels import BUCKETS
from app.ui import reason
from protocol import rules, wire

_MIN_PIN = const(4)  # gateway/services/couriers.py: a PIN is 4-12 digits
_MAX_PIN = const(12)
# A handover record lists its bags and must fit one journal frame (2 KB): 100 bag numbers
# of 12 characters leave room for the other fields.
_MAX_BAGS = const(100)
# Wrong PINs in a row on this handheld, and the wall time sign-in is locked until: "<n> <t>".
# On flash, so that neither the mode key nor a restart resets it; per device, not per driver,
# so that trying another badge gains nothing. Long names: not interned (docs/firmware.md).
_FREE_TRIES = const(5)  # wrong PINs before the first lock
_LOCK_S = const(60)  # the first lock; each wrong PIN after it doubles the wait
_MAX_LOCK_S = const(3600)
_FAILURES = const("/pin_failures")
_WAIT = const("retry in %d s")  # 13 characters: not interned
_SIGNING = const("app.signing")
_DOOR = const("app.door_receipt")
# Screen texts in one string, split when one is shown: each string constant of over 10
# characters costs ~64 bytes of heap while pickup is loaded (unix port), and each shorter one
# is a name interned for good (the last three, which made room for app/door_receipt.py's).
# Not the paths and the module name: those stay alive while app/signing.py loads.
_TEXTS = const("Scan driver|%d left to scan|seller: up/down|REFUSE|ok=refuse|signed in")
_SCAN_DRIVER = const(0)
_LEFT = const(1)  # bags of the config's list still to scan
_CHOOSE_SELLER = const(2)
_REFUSE = const(3)
_OK_REFUSES = const(4)
_SIGNED_IN = const(5)
_ENTER = const(10)  # the "digit" after 9 (or before 0): ok tries the PIN entered


class Pickup:
    def __init__(self, hh):
        self.hh = hh
        self._reset()
        self.seller = 0  # index into settings["stores"]: whose bags these are

    # unlock, handover and _reset: names interned already (app/signing.py, the record kind,
    # app/bagging.py), where new private names would be kept for good (docs/firmware.md).

    def _reset(self):
        """Signed out: back to the badge."""
        self.step = "badge"  # badge -> pin (-> seller) -> bags (-> refuse -> bags) -> badge
        self.driver = {}  # the config entry of the driver signing in, {} when nobody is
        self.key = b""  # the unwrapped signing key: in RAM only while signed in
        self.pin = ""
        # What up/down choose: the PIN digit shown (_ENTER: try the PIN), the refusal reason
        # (index into wire.REFUSE_REASONS), or the bag of the list to scan shown (1 for the
        # first; 0: none, the last scan is shown). One name, interned by the runtime already.
        self.index = 0
        self.bags = []
        self.out = []  # the bags refused: neither in the handover nor still to scan
        self.count = 0  # the bags of the list still to scan, as the screen last counted them
        self.last = None  # the bag scanned or chosen last, which "cancel" and "ok" refuse

    def describe(self, st):
        st["step"] = self.step
        st["driver"] = self.driver.get("id")
        st["bags"] = len(self.bags)

    # --- screen ----------------------------------------------------------------------------

    def home(self, beep=None, last="", code=None):
        ui = self.hh.ui
        if self.step == "badge":
            ui.show(("PICKUP", "", _TEXTS.split("|")[_SCAN_DRIVER], "badge"), beep)
        elif self.step == "pin":
            digit = "ok" if self.index == _ENTER else str(self.index)  # "ok": ok tries the PIN
            ui.show(("PICKUP", self.driver["name"], "PIN", "*" * len(self.pin) + digit), beep)
        elif self.step == "refuse":
            texts = _TEXTS.split("|")
            reason_shown = wire.REFUSE_REASONS[self.index]
            ui.show((texts[_REFUSE], self.last, reason_shown, texts[_OK_REFUSES]), beep)
        else:  # the bags, also while the seller is chosen (its id on the 5th line)
            # The config's "bags", for a seller's handheld the account's bags awaiting pickup
            # (any may go with a handover of any of its stores: gateway/ingest/registry.py,
            # _handover_refusal): those neither scanned nor refused are counted, read from
            # flash a bucket at a time, never held in RAM; the one at place self.index (1 for
            # the first) is shown and becomes the bag "cancel" refuses.
            n = 0
            for b in range(BUCKETS):
                for line in flashfile.read_or(self.hh.bags.dir + "/%d" % b, b"").split(b"\n"):
                    bag = line[: line.find(b"\t")].decode()
                    if line and bag not in self.bags and bag not in self.out:
                        n += 1
                        if n == self.index:
                            self.last = bag
                            last = str(n) + " " + bag
            self.count = n  # what up/down scroll ("count": a name the runtime has)
            if self.step == "seller":
                last = _TEXTS.split("|")[_CHOOSE_SELLER]
            elif not last:
                last = self.last or ""
            lines = ("PICKUP", "%d bags" % len(self.bags), _TEXTS.split("|")[_LEFT] % n, last)
            ui.show(lines + (self._store()[0], self.driver["name"]), beep, code)

    def _store(self):
        stores = self.hh.settings.get("stores") or ()
        if not stores:
            return "", ""
        s = stores[self.seller % len(stores)]
        if not isinstance(s, str):  # ["<seller id>", "<seller name>"]
            return s[0], s[1] if len(s) > 1 else ""
        # The seller name is part of the signed message (receipts.handover_message).
        names = self.hh.settings.get("store_names") or {}
        return s, names.get(s, "")

    # --- inputs ----------------------------------------------------------------------------

    def on_weight(self, grams):
        pass  # the courier does not weigh

    def on_scan(self, code):
        if code.startswith("DRV:") or self.step == "badge":
            want = code[4:] if code.startswith("DRV:") else None
            for d in self.hh.settings.get("drivers") or ():
                if d.get("id") == want or (want is None and d.get("badge") == code):
                    self._reset()
                    self.driver = d
                    self.step = "pin"
                    self.home("ok")  # a badge scan beeps like every scan
                    return
            self.hh.ui.refuse("PICKUP", rules.UNKNOWN_DRIVER, code[:16])
        elif code.startswith("PIN:"):
            if self.step == "pin":
                self.unlock(code[4:])
            else:
                self.hh.on_bad_barcode()
        elif self.step != "pin" and wire.text_ok(code) and not code.startswith("DIM:"):
            # A bag label: this scan's time is the bag's legal pickup time; on the refusal
            # screen it chooses the bag to refuse instead, whether scanned or not.
            hh = self.hh
            serial = wire.bag_serial(code)
            lo, hi = hh.settings["bag_range"]
            # This handheld's own numbers: up to its next bag number they were opened here;
            # left_bag (app/workflow.py) is bagging's state, its open bag first.
            left = hh.left_bag or (None, 0, 0, 0, 0, None, lo)
            mine = serial is not None and lo <= serial <= hi
            if serial is None or mine and serial >= left[6]:
                hh.ui.refuse("PICKUP", rules.NOT_A_BAG, code)
            elif code == left[0]:
                hh.ui.refuse("PICKUP", rules.BAG_OPEN, code)
            elif self.step == "refuse":
                self.last = code
                self.home("ok")
            elif code in self.bags:
                hh.ui.refuse("PICKUP", rules.BAG_SCANNED, code)
            elif len(self.bags) >= _MAX_BAGS:
                hh.ui.refuse("PICKUP", rules.TOO_MANY_BAGS, code)
            elif hh.journal_ok("pickup", bag=code, drv=self.driver["id"]):
                self.step = "bags"  # a scan takes the seller shown
                self.bags.append(code)
                self.last = code
                self.index = 0
                if mine or hh.bags.get(code) is not None:
                    self.home("ok", code)
                else:  # closed on another handheld since the config, or not this seller's
                    self.home("warn", reason(rules.UNKNOWN_BAG), rules.UNKNOWN_BAG)
        else:
            self.hh.on_bad_barcode()

    def on_key(self, key):
        step = self.step
        if step == "pin":  # up/down change the digit, ok enters it or tries the PIN, cancel deletes
            if key in ("up", "down"):
                self.index = (self.index + (1 if key == "up" else -1)) % (_ENTER + 1)
            elif key == "ok" and self.index == _ENTER:
                self.unlock(self.pin)
                return
            elif key == "ok" and len(self.pin) < _MAX_PIN:
                self.pin += str(self.index)
                self.index = 0
            elif key == "cancel":
                if self.pin:
                    self.pin = self.pin[:-1]
                else:
                    self._reset()
            self.home()
        elif step == "refuse":  # up/down choose the reason, ok refuses the bag shown
            reasons = wire.REFUSE_REASONS
            if key in ("up", "down"):
                self.index = (self.index + (1 if key == "up" else -1)) % len(reasons)
                self.home()
                return
            self.step = "bags"
            why = reasons[self.index]
            self.index = 0
            if key != "ok":
                self.home()
                return
            bag = self.last
            if self.hh.journal_ok("pickup_refuse", bag=bag, drv=self.driver["id"], why=why):
                if bag in self.bags:
                    self.bags.remove(bag)
                self.out.append(bag)
                self.last = None
                self.home("warn", "-" + str(bag))  # minus: off the handover, as in bagging
        elif step == "seller":  # before the first bag: up/down choose the linked store
            if key in ("up", "down"):
                self.seller += 1 if key == "up" else -1
            elif key == "ok":
                self.step = "bags"
            self.home()
        elif step == "bags":
            if key == "ok":
                self.handover()
                return
            if key == "cancel":  # refuse the bag shown: scrolled to, else scanned last
                if self.last is not None:
                    self.step = "refuse"
                    self.index = 0
            elif key in ("up", "down"):  # scroll the list of bags still to scan
                self.index = (self.index + (1 if key == "up" else -1)) % (self.count + 1)
            self.home()
        else:
            self.home()

    # --- signing in ------------------------------------------------------------------------

    def unlock(self, pin):
        """Try a PIN: entered with the keys (ok on "ok") or scanned as PIN:<digits>. Every
        PIN tried counts: after _FREE_TRIES wrong ones in a row, sign-in is locked for
        _LOCK_S seconds, doubled by each further wrong one (up to _MAX_LOCK_S); the right PIN
        resets the count."""
        hh = self.hh
        path = hh.storage + _FAILURES
        data = flashfile.read_or(path)
        fails, until = data.split() if data else (0, 0)
        fails = int(fails)
        wait = int(until) - clock.wall()
        self.pin = ""
        self.index = 0
        if 0 < wait <= _MAX_LOCK_S:  # a longer wait is a clock set back since: not honoured
            hh.ui.refuse("PICKUP", rules.PIN_LOCKED, _WAIT % wait)
            return
        good = pin.isdigit() and _MIN_PIN <= len(pin) <= _MAX_PIN
        key = lazy.call(_SIGNING, "unlock", self.driver, pin) if good else None
        if key is None:
            fails += 1
            wait = 0
            if fails >= _FREE_TRIES:
                wait = min(_LOCK_S << min(fails - _FREE_TRIES, 6), _MAX_LOCK_S)
            # b"%d %d\n" as app/config.py writes its digests: a name interned already.
            flashfile.write_atomic(path, b"%d %d\n" % (fails, clock.wall() + wait if wait else 0))
            if wait:
                hh.ui.refuse("PICKUP", rules.PIN_LOCKED, _WAIT % wait)
            else:
                hh.ui.refuse("PICKUP", rules.WRONG_PIN, self.driver["name"])
            return
        if fails:
            flashfile.remove_if_exists(path)
        if not hh.journal_ok("signin", drv=self.driver["id"]):
            return
        self.key = key
        # With several linked stores the driver first chooses whose handover this is.
        self.step = "seller" if len(hh.settings.get("stores") or ()) > 1 else "bags"
        self.home("ok", _TEXTS.split("|")[_SIGNED_IN])

    def handover(self):
        hh = self.hh
        if not self.bags:
            hh.ui.refuse("PICKUP", rules.NO_BAGS)
            return
        sid, sname = self._store()
        if not sid:
            hh.ui.refuse("PICKUP", rules.NO_STORE)
            return
        path = hh.storage + "/handover_serial"
        serial = int(flashfile.read_or(path, b"0")) + 1
        # Stored first, like bag numbers: a power cut wastes a handover id, never reuses one.
        flashfile.write_atomic(path, b"%d" % serial)
        hid = "%s-%d" % (hh.settings["device_id"], serial)
        day = clock.local_date()
        d = self.driver
        sig, digest = lazy.call(_SIGNING, "signature", self.key, day, (sid, sname), self.bags, d)
        # The seller's copy at the door, a QR code of the receipt, where the gateway says where
        # it is served: the code loaded now, into the blocks app/signing.py gave back, before
        # the journal's write scatters small ones among them (the handover is the heap's
        # fullest moment, docs/firmware.md "The seller's copy at the door").
        door = hh.settings.get("receipt_url")
        if door:
            __import__(_DOOR)
        n = len(self.bags)
        if not hh.journal_ok(
            "handover", hid=hid, drv=d["id"], seller=sid, date=day, bags=self.bags, sig=sig
        ):
            lazy.drop(_DOOR)
            return
        self._reset()
        if door:
            lazy.call(_DOOR, "show", hh.ui.board, door, (n, sig, digest))
        else:
            hh.ui.show(("HANDOVER", hid, "%d bags" % n, day, sid), "ok")
