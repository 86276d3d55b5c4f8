# The handheld's state machine (docs/firmware.md): three workflows behind the mode key,
# bagging -> pickup -> hub -> bagging. Each mode is imported when entered and unloaded when
# left, so only one mode's code is in RAM; an open bag is rebuilt from the journal.
# Every accepted action is appended to the journal before the OK beep.
import gc

import lazy
from app import clock
from protocol import rules
from app.journal import JournalFull
from app.parcels import FlashIndex, RecentParcels, parse_parcel

from micropython import const

_MODES = const(("bagging", "pickup", "hub"))
TYPE_CHECKING = const(False)  # True for pyright only: the modes' types, not loaded at run time
if TYPE_CHECKING:
    from app.bagging import Bagging
    from app.hub import Hub
    from app.pickup import Pickup


class Handheld:
    def __init__(self, ui, journal, settings, boot, storage):
        self.ui = ui
        self.journal = journal
        self.settings = settings
        self.boot = boot
        self.storage = storage
        self.weight_g = None  # last stable weight on the scale
        self.on_record = None  # called after every journal append (the sync wakes up)
        # The sync's request(trk, function) while online: asks the gateway about a parcel the
        # cache lacks (app/sync.py); None offline or without a sync.
        self.request = None
        self.parcels = FlashIndex(storage + "/parcels")
        self.bags = FlashIndex(storage + "/bags")
        if "parcels" in settings or "bags" in settings:
            # A provisioning file may carry the config message's parcel cache: index it.
            self.apply_config(settings)
        # Bagging's buffers live as long as the device: re-entering bagging in a heap that
        # scanning has fragmented then needs no large block. The open bag's fingerprints:
        # 1.2 KB for a full bag where a set of 300 tracking-number strings takes ~15 KB.
        self.fps = bytearray(4 * rules.MAX_PARCELS)
        self.recent = RecentParcels(storage + "/recent")  # for IN_OTHER_BAG
        self.mode = _MODES[0]
        # Bagging's state when it was left for another mode (None: not yet): the state shows
        # the open bag in the other modes, and bagging resumes from it without the journal.
        self.left_bag = None
        self.bagging = None
        self.current: Bagging | Pickup | Hub = self._enter()

    # --- configuration -----------------------------------------------------------------

    def apply_config(self, msg, retained=False, waiting=None):
        """Take a config: provisioning settings (a dict), or a message from the gateway as
        bytes or the file it was spooled to (docs/firmware.md, "Config"); config.json is
        rewritten if the settings changed. True when the gateway should hear the version the
        handheld has (a config taken, or a stale or out-of-order one dropped). waiting: the
        parcel request app/sync.py waits on, if any.

        app/config.py does it, loaded for the call only: config messages are rare. It is the
        largest module loaded while the device runs (~5 KB of heap on the 64-bit unix port).
        If it does not fit, bagging's code leaves the heap and the config is applied again
        (from the start: config.apply is safe to repeat, as after a power cut), bagging's
        state kept as for the mode key; nothing else runs meanwhile (one synchronous call).
        Not while a parcel request waits (its answer goes to the Bagging object that asked),
        nor in pickup or hub mode: leaving them ends a courier's session or a weighing.
        """
        try:
            try:
                return lazy.call("app.config", "apply", self, msg, retained)
            except MemoryError:
                if self.bagging is None or waiting is not None:
                    raise
            self._leave()
            self.mode = _MODES[0]  # still bagging: only its code left
            try:
                return lazy.call("app.config", "apply", self, msg, retained)
            finally:
                try:
                    self.current = self._enter()  # from left_bag; the screen stays as it is
                except MemoryError:  # the next input loads it (_mode)
                    pass
        finally:  # the screens' language, which the config may have changed (issue 18)
            self.ui.board.display.apply(self.settings.get("screen_lang"), self.storage)

    def parcel_facts(self, trk):
        """(status, hub, seller, big) from the cache, or None for a parcel it does not know."""
        return parse_parcel(self.parcels.get(trk))

    # --- what the control channel and the screen show -----------------------------------

    def state(self):
        st = {
            "mode": self.mode,
            "bag": self.left_bag[0] if self.left_bag else None,
            "bag_count": self.left_bag[1] if self.left_bag else 0,
            "weight_g": self.weight_g,
            "journal_depth": self.journal.depth,
        }
        self._mode().describe(st)
        return st

    def home(self):
        self._mode().home()

    def _mode(self):
        """The current mode's object, loaded again if its code did not fit back after a
        config (apply_config): the input that finds it missing may be lost, not the device."""
        if self.current is None:
            gc.collect()
            self.current = self._enter()
        return self.current

    # --- journal ---------------------------------------------------------------------------

    def record(self, kind, **fields):
        """Append a record with the time header (b, t, w, q); JournalFull if flash is full."""
        # The header joins the keyword dict: one dict per record, not a second one per scan.
        fields["b"] = self.boot
        fields["t"] = clock.ticks()
        fields["w"] = clock.wall()
        fields["q"] = int(clock.synced)
        fields["k"] = kind
        seq = self.journal.append(fields)
        if self.on_record is not None:
            self.on_record()
        return seq

    def journal_ok(self, kind, **fields):
        """Append, or show the full flash; False when nothing was written."""
        try:
            self.record(kind, **fields)
            return True
        except JournalFull:
            self.ui.refuse("NOT SAVED", rules.JOURNAL_FULL, "sync needed")
            return False

    # --- inputs ----------------------------------------------------------------------------

    def on_bad_barcode(self):
        self.ui.refuse("SCAN REFUSED", rules.BAD_BARCODE)

    def on_scan(self, code):
        """None, or a coroutine that answers the scan (a parcel asked for): the scanner task
        awaits it before the next scan."""
        return self._mode().on_scan(code)

    def on_weight(self, grams):
        self.weight_g = grams
        self._mode().on_weight(grams)

    def on_key(self, key):
        if key == "mode":
            # Two calls: the collector scans the stack conservatively, and the frame that
            # let go of the old mode may still hold a pointer to it in a register.
            self._leave()
            self._arrive()
        else:
            self._mode().on_key(key)

    def _leave(self):
        """Drop the current mode: first its objects, then its code."""
        old = self.mode
        self.mode = _MODES[(_MODES.index(old) + 1) % len(_MODES)]
        b = self.bagging
        if b is not None:
            self.left_bag = (b.bag, b.n, b.fm49, b.other, b.size, b.dims, b.next_serial, b.waiting)
        # Set to None, not deleted: a deleted attribute keeps its value in the instance's
        # table until the slot is reused (py/map.c), which kept the old mode's code in RAM.
        self.bagging = b = None
        self.current = None  # pyright: ignore[reportAttributeAccessIssue] - until _arrive
        lazy.drop("app." + old)

    def _arrive(self):
        gc.collect()  # the old mode's code is free now, before the next one loads
        self.current = self._enter()
        gc.collect()  # and what loading it left behind, before the mode's first input
        self.current.home()

    def _enter(self):
        if self.mode == "pickup":
            from app.pickup import Pickup

            return Pickup(self)
        if self.mode == "hub":
            from app.hub import Hub

            return Hub(self)
        from app.bagging import Bagging

        self.bagging = Bagging(self)  # the mode object while bagging, else None
        return self.bagging
