# Courier pickup at the seller's door (domain.md, "Pickup and handover"): the driver signs in
# with badge + PIN, scans each bag label (that scan's time is the bag's legal pickup time),
# may refuse a bag with one of the manual's reasons, and closes a signed handover.
# Loaded only while the mode is pickup (app/workflow.py); app/signing.py only while a PIN
# is tried or a handover signed.
from micropython import const

import lazy
from app import clock, store, wire

_MIN_PIN = const(4)  # gateway/drivers.py: a PIN is 4-12 digits
_MAX_PIN = const(12)
# A handover record lists its bags and must fit one journal frame (2 KB): 100 bag numbers
# of 12 characters leave room for the other fields.
_MAX_BAGS = const(100)
_SIGNING = const("app.signing")


class Pickup:
    def __init__(self, hh):
        self.hh = hh
        self._sign_out()
        self.seller = 0  # index into settings["stores"]: whose bags these are

    def _sign_out(self):
        self.step = "badge"  # badge -> pin -> bags (-> refuse -> bags) -> badge
        self.driver = {}  # the config entry of the driver signing in, {} when nobody is
        self.key = b""  # the unwrapped signing key: in RAM only while signed in
        self.pin = ""
        self.digit = 0
        self.bags = []
        self.last = None  # the bag scanned last, which "cancel" refuses
        self.reason = 0

    def describe(self, st):
        st["step"] = self.step
        st["driver"] = self.driver.get("id")
        st["bags"] = len(self.bags)

    # --- screen ----------------------------------------------------------------------------

    def home(self, beep=None, last=""):
        ui = self.hh.ui
        if self.step == "badge":
            ui.show(("PICKUP", "", "Scan driver", "badge"), beep)
        elif self.step == "pin":
            ui.show(("PICKUP", self.driver["name"], "PIN", "*" * len(self.pin) + str(self.digit)))
        elif self.step == "refuse":
            ui.show(("REFUSE", self.last, wire.REFUSE_REASONS[self.reason], "ok=refuse"))
        else:
            sid, _ = self._store()
            ui.show(("PICKUP", self.driver["name"], "%d bags" % len(self.bags), last, sid), beep)

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
                    self._sign_out()
                    self.driver = d
                    self.step = "pin"
                    self.home()
                    return
            self.hh.ui.refuse("PICKUP", "UNKNOWN_DRIVER", code[:16])
        elif code.startswith("PIN:"):
            if self.step == "pin":
                self._try_pin(code[4:], True)
            else:
                self.hh.on_bad_barcode()
        elif self.step == "bags" and wire.text_ok(code) and not code.startswith("DIM:"):
            # A bag label: this scan's time is the bag's legal pickup time.
            if code in self.bags:
                self.hh.ui.refuse("PICKUP", "DUPLICATE", code)
            elif len(self.bags) >= _MAX_BAGS:
                self.hh.ui.refuse("PICKUP", "TOO_MANY_BAGS", code)
            elif self.hh.journal_ok("pickup", bag=code, drv=self.driver["id"]):
                self.bags.append(code)
                self.last = code
                self.home("ok", code)
        else:
            self.hh.on_bad_barcode()

    def on_key(self, key):
        step = self.step
        if step == "pin":  # up/down change the digit, ok enters it, cancel deletes one
            if key in ("up", "down"):
                self.digit = (self.digit + (1 if key == "up" else -1)) % 10
            elif key == "ok":
                self._try_pin(self.pin + str(self.digit), False)
                return
            elif key == "cancel":
                if self.pin:
                    self.pin = self.pin[:-1]
                else:
                    self._sign_out()
            self.home()
        elif step == "refuse":  # up/down choose the reason, ok refuses the bag scanned last
            reasons = wire.REFUSE_REASONS
            if key in ("up", "down"):
                self.reason = (self.reason + (1 if key == "up" else -1)) % len(reasons)
                self.home()
                return
            self.step = "bags"
            if key != "ok":
                self.home()
                return
            bag = self.last
            why = reasons[self.reason]
            if self.hh.journal_ok("pickup_refuse", bag=bag, drv=self.driver["id"], why=why):
                self.bags.remove(bag)
                self.last = None
                self.home("warn", "refused " + why)
        elif step == "bags":
            if key == "ok":
                self._handover()
            elif key == "cancel" and self.last is not None:
                self.step = "refuse"
                self.reason = 0
                self.home()
            elif key in ("up", "down"):
                self.seller += 1 if key == "up" else -1
                self.home()
            else:
                self.home()
        else:
            self.home()

    # --- signing in ------------------------------------------------------------------------

    def _try_pin(self, pin, whole):
        """Keys enter one digit at a time and the PIN is tried from the 4th digit on;
        a scanned PIN: code is tried whole."""
        good = pin.isdigit() and _MIN_PIN <= len(pin) <= _MAX_PIN
        key = lazy.call(_SIGNING, "unlock", self.driver, pin) if good else None
        if key is not None:
            if not self.hh.journal_ok("signin", drv=self.driver["id"]):
                return
            self.key = key
            self.pin = ""
            self.step = "bags"
            self.home("ok", "signed in")
        elif whole or len(pin) >= _MAX_PIN:
            self.pin = ""
            self.digit = 0
            self.hh.ui.refuse("PICKUP", "WRONG_PIN", self.driver["name"])
        else:
            self.pin = pin
            self.digit = 0
            self.home()

    def _handover(self):
        hh = self.hh
        if not self.bags:
            hh.ui.refuse("PICKUP", "NO_BAGS")
            return
        sid, sname = self._store()
        if not sid:
            hh.ui.refuse("PICKUP", "NO_STORE")
            return
        path = hh.storage + "/handover_serial"
        serial = int(store.read_or(path, b"0")) + 1
        # Stored first, like bag numbers: a power cut wastes a handover id, never reuses one.
        store.write_atomic(path, b"%d" % serial)
        hid = "%s-%d" % (hh.settings["device_id"], serial)
        day = clock.local_date()
        d = self.driver
        sig = lazy.call(_SIGNING, "signature", self.key, day, (sid, sname), self.bags, d)
        n = len(self.bags)
        if not hh.journal_ok(
            "handover", hid=hid, drv=d["id"], seller=sid, date=day, bags=self.bags, sig=sig
        ):
            return
        self._sign_out()
        hh.ui.show(("HANDOVER", hid, "%d bags" % n, day, sid), "ok")
