"""What one fleet handheld does in each step of the day: bag, pick up, receive at the hub,
sync; and the parcel numbers it scans."""

import random
import time
from dataclasses import dataclass

from devkit.control import ControlError, Handheld
from devkit.fleet.scenario import (
    DUPLICATE,
    NOT_BAGGABLE,
    REFUSE_REASONS,
    Device,
    bad_parcels,
    flatten,
)
from devkit.handheld import SimHandheld


@dataclass
class Unit:
    """A fleet member: its figures (Device) and its handheld process."""

    dev: Device
    sim: SimHandheld

    @property
    def hh(self) -> Handheld:
        return self.sim.control

    def poll(self) -> None:
        st = self.hh.state()
        self.dev.depth = st.get("journal_depth")
        self.dev.connected = st.get("connected")
        self.dev.screen = " | ".join(line for line in st.get("screen", []) if line)


_VERDICT = (["RECEIVED"], ["EXCEPTION"])  # the hub's screen after "ok" (firmware/app/hub.py)


def _screen(obj: dict) -> list[str]:
    return obj.get("screen") or []


def parcel_number(seller_no: int, device_no: int, serial: int) -> str:
    return f"LZ{seller_no:02d}{device_no:03d}{serial:06d}CN"


def refused_number(seller_no: int, device_no: int, serial: int) -> str:
    """A parcel the handheld must refuse: its own series, so it never meets a bagged one."""
    return f"LX{seller_no:02d}{device_no:03d}{serial:06d}CN"


def parcels_to_import(steps: list[dict], seller_no: int, device_no: int) -> list[tuple[str, str]]:
    """(tracking number, platform status) of every parcel one seller handheld scans in the
    day, in the order Worker.bag scans them: the platform import that precedes the day."""
    out, good, bad = [], 0, 0
    for step in flatten(steps):
        if step["do"] != "bag":
            continue
        for _ in range(int(step.get("bags", 1))):
            for _ in range(int(step.get("parcels", 5))):
                good += 1
                out.append((parcel_number(seller_no, device_no, good), "rts"))
            for state in bad_parcels(step):
                bad += 1
                out.append((refused_number(seller_no, device_no, bad), state))
    return out


class Worker:
    def __init__(self, unit: Unit, seller_no: int, device_no: int, seed: int):
        self.unit = unit
        self.seller_no = seller_no
        self.device_no = device_no
        self.rng = random.Random(f"{seed}/{unit.dev.device_id}")
        self.serial = 0
        self.bad_serial = 0
        self.refused_parcels: list[str] = []  # scanned, refused from the parcel-state cache
        self.handover: str | None = None

    def bag(self, step: dict) -> None:
        dev, hh = self.unit.dev, self.unit.hh
        for _ in range(int(step.get("bags", 1))):
            parcels = []
            for i in range(int(step.get("parcels", 5))):
                self.serial += 1
                trk = parcel_number(self.seller_no, self.device_no, self.serial)
                beep = hh.scan(trk)
                if beep.get("beep") != "ok":
                    raise ControlError(f"{trk} refused: {beep}")
                parcels.append(trk)
                dev.parcels += 1
                if i == 0:
                    for _ in range(int(step.get("duplicates", 0))):
                        # The same label scanned again: refused, not in the bag twice.
                        again = hh.scan(trk)
                        if again.get("code") != DUPLICATE:
                            raise ControlError(f"duplicate {trk} not refused: {again}")
                        dev.refused += 1
            for state in step.get("not_baggable", []):
                # The platform lists it, but not ready to ship: the cache refuses it, online
                # or not, and nothing reaches the journal.
                self.bad_serial += 1
                trk = refused_number(self.seller_no, self.device_no, self.bad_serial)
                beep = hh.scan(trk)
                if beep.get("code") != NOT_BAGGABLE[state]:
                    raise ControlError(f"{state} parcel {trk} not refused: {beep}")
                self.refused_parcels.append(trk)
                dev.refused += 1
            lo, hi = step.get("grams", [2000, 15000])
            grams = self.rng.randint(lo, hi)
            hh.weigh(grams)
            closed = self.press("ok", lambda o: _screen(o)[:1] == ["CLOSED"])
            dev.closed[closed["screen"][1]] = {"parcels": parcels, "grams": grams}
            # Lifted off: the next bag's weight counts only after the scale was back near zero.
            hh.weigh(0)
            dev.bags += 1
            self.unit.poll()

    def press(self, key: str, done, tries: int = 4) -> dict:
        """Press key until an event or the state satisfies done. The simulated key is held
        40 ms; on a loaded machine the keys task may not sample it, so a lost press is
        pressed again, never a press that showed its effect."""
        hh = self.unit.hh
        for _ in range(tries):
            hh.key(key)
            try:
                return hh.expect(done, timeout=3)
            except ControlError:
                st = hh.state()
                if done(st):
                    return st
        raise ControlError(f"key {key} had no effect after {tries} presses: {hh.events[-2:]}")

    def pickup(self, driver: dict, bags: list[str], refuse: dict[str, str]) -> None:
        """The driver signs in on this handheld, scans the seller's bags, refuses some and
        closes a signed handover (firmware/app/pickup.py)."""
        dev, hh = self.unit.dev, self.unit.hh
        self.press("mode", lambda o: _screen(o)[:1] == ["PICKUP"])
        hh.send(f"scan DRV:{driver['id']}")
        hh.expect(lambda o: _screen(o)[2:3] == ["PIN"])
        if hh.scan(f"PIN:{driver['pin']}").get("beep") != "ok":
            raise ControlError(f"driver {driver['id']} could not sign in: {hh.events[-1]}")
        for bag in bags:
            beep = hh.scan(bag)
            # A bag closed on another of the seller's handhelds since this one's config
            # counts with a warning (UNKNOWN_BAG): the gateway decides.
            if beep.get("beep") != "ok" and beep.get("code") != "UNKNOWN_BAG":
                raise ControlError(f"pickup scan of {bag} refused: {beep}")
            why = refuse.get(bag)
            if why is None:
                dev.done += 1
                continue
            self.press(
                "cancel", lambda o, b=bag: _screen(o)[:3] == ["REFUSE", b, REFUSE_REASONS[0]]
            )
            for reason in REFUSE_REASONS[1 : REFUSE_REASONS.index(why) + 1]:
                self.press("up", lambda o, b=bag, r=reason: _screen(o)[:3] == ["REFUSE", b, r])
            self.press("ok", lambda o: o.get("beep") == "warn")
        done = self.press("ok", lambda o: _screen(o)[:1] == ["HANDOVER"])
        self.handover = done["screen"][1]
        # mode: pickup -> hub -> bagging, back to where the seller's staff left it.
        self.press("mode", lambda o: _screen(o)[:1] == ["HUB ARRIVAL"])
        self.press("mode", lambda o: o.get("mode") == "bagging" or _screen(o)[:1] == ["BAGGING"])

    def arrive(self, bags: list[tuple[str, int]]) -> None:
        """Hub staff scan each bag, put it on the scale and receive it (firmware/app/hub.py)."""
        dev, hh = self.unit.dev, self.unit.hh
        if hh.state().get("mode") != "hub":
            self.press("mode", lambda o: _screen(o)[:1] == ["PICKUP"])
            self.press("mode", lambda o: _screen(o)[:1] == ["HUB ARRIVAL"])
        for bag, grams in bags:
            hh.send(f"scan {bag}")
            hh.expect(lambda o, b=bag: _screen(o)[:1] == [b])
            hh.weigh(grams)
            self.press("ok", lambda o, b=bag: _screen(o)[:1] == [b] and _screen(o)[1:2] in _VERDICT)
            dev.done += 1
            hh.weigh(0)
            self.unit.poll()

    def sync(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.unit.poll()
            if self.unit.dev.depth == 0 and self.unit.dev.connected:
                return
            time.sleep(0.2)
        raise ControlError(f"journal not drained in {timeout:.0f} s: {self.unit.dev.depth} left")
