# Hub arrival at the sorting centre: scan a bag, weigh it, compare with its weight at bagging
# (config "bags"); within tolerance it is received, else received with exception.
# The allowance is gateway/domain/arrival.py's: max(grams, percent of the bagging weight).
# Loaded only while the mode is hub (app/workflow.py).
from protocol import rules, wire


class Hub:
    def __init__(self, hh):
        self.hh = hh
        self.bag = None  # the bag scanned, waiting for "ok" with its weight on the scale
        self.expected = None  # its bagging weight in grams, None if the cache lacks it

    def describe(self, st):
        st["hub_bag"] = self.bag

    def home(self, beep=None):
        if self.bag is None:
            self.hh.ui.show(("HUB ARRIVAL", "", "Scan a bag"), beep)
            return
        w = self.hh.weight_g
        expect = "?" if self.expected is None else "%d g" % self.expected
        now = "" if w is None else "%d g" % w
        self.hh.ui.show((self.bag, "bagged " + expect, "scale " + now, "ok=receive"), beep)

    def on_scan(self, code):
        if not wire.text_ok(code) or code[:4] in ("DRV:", "PIN:", "DIM:"):
            self.hh.on_bad_barcode()
            return
        self.bag = code
        known = self.hh.bags.get(code)
        self.expected = int(known) if known and known.isdigit() else None
        self.home()

    def on_weight(self, grams):
        if self.bag is not None:
            self.home()

    def on_key(self, key):
        if key == "cancel":
            self.bag = None
        if key != "ok" or self.bag is None:
            self.home()
            return
        # ok with the bag on the scale: received, or received with an exception.
        hh = self.hh
        w = hh.weight_g
        if w is None or w <= 0:
            hh.ui.refuse(self.bag, rules.NO_WEIGHT)
            return
        if self.expected is None:
            ok = 0  # no bagging weight to compare with: the hub signs with an exception
            detail = "no bag weight"
        else:
            diff = w - self.expected
            s = hh.settings
            allowance = max(
                s.get("arrival_tolerance_g", 200),
                self.expected * s.get("arrival_tolerance_pct", 2.0) / 100,
            )
            ok = 1 if abs(diff) <= allowance else 0
            detail = "%+d g" % diff
        if not hh.journal_ok("arrive", bag=self.bag, g=w, ok=ok):
            return
        bag = self.bag
        self.bag = None
        hh.ui.show(
            (bag, "RECEIVED" if ok else "EXCEPTION", detail, "%d g" % w),
            "ok" if ok else "warn",
            None if ok else rules.ARRIVAL_EXCEPTION,
        )
