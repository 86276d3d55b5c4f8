"""Every screen of the handheld, reached as its users reach them (issue 18): a bag with its
refusals, a courier's pickup and handover, a hub arrival. tests/firmware/test_screens.py
checks that each fits the panel in both languages; devkit/screen_images.py saves them for
docs/firmware.md. The handheld runs without a gateway (devkit/handheld.py with_config)."""

from __future__ import annotations

from pathlib import Path

from devkit.control import ControlError, Handheld
from devkit.ports import free_port
from gateway.services.couriers import pin_check, pin_pad
from gateway.services.device_config import name_glyphs

PIN = "4711"
DRIVER = "王师傅"
BAG = "BS0000000001"  # the bag the tour closes, then hands over
LISTED = "BS0000000077"  # bags of the config's index: one to receive, one that weighs less
SHORT = "BS0000000078"


def driver_entry() -> dict:
    """The courier as a config lists it (gateway/services/couriers.py config_entry), with a
    route key of zeros."""
    salt = bytes(8)
    return {
        "id": "D042",
        "name": DRIVER,
        "badge": "BADGE-042",
        "salt": salt.hex(),
        "check": pin_check(salt, PIN),
        "key": pin_pad(salt, PIN).hex(),
    }


def config(language: str) -> dict:
    """config.json of the tour's handheld, its screens in language ("en" or "zh")."""
    return {
        "device_id": "HH-1",
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "user": "u", "password": "p"},
        "bag_range": [1, 1000],
        "stores": [["S1", "深圳小商店"]],
        "parcels": {
            "LZRTS0001": ["rts", "SZ", "S1", 0],
            "LZRTS0002": ["rts", "SZ", "S1", 0],
            "LZPENDING": ["pending", "SZ", "S1", 0],
            "LZCANCEL": ["cancelled", "SZ", "S1", 0],
            "LZSEABIG": ["rts", "SZ", "S1", 1],
            "LZOTHERSTORE": ["rts", "SZ", "S9", 0],
            "LZFM49": ["rts", "FM-49", "S1", 0],
        },
        "bags": {LISTED: 30_000, SHORT: 30_000},
        "drivers": [driver_entry()],
        "screen_lang": language,
        "name_glyphs": name_glyphs([DRIVER, "深圳小商店"]),
    }


# (the screen's name, the control-channel command that leads to it; None: the boot screen).
STEPS: tuple[tuple[str, str | None], ...] = (
    ("bagging", None),
    ("bagging-scale", "weight 1200"),
    ("bagging-scale-empty", "weight 0"),
    ("parcel-added", "scan LZRTS0001"),
    ("refused-not-rts", "scan LZPENDING"),
    ("refused-cancelled", "scan LZCANCEL"),
    ("refused-already-in-bag", "scan LZRTS0001"),
    ("refused-store-not-linked", "scan LZOTHERSTORE"),
    ("refused-sea-big-item", "scan LZSEABIG"),
    ("refused-hub-not-bagged", "scan LZFM49"),
    ("parcel-unchecked", "scan LZUNKNOWN01"),
    ("refused-bad-barcode", "scan DIM:1x2"),
    ("parcel-added-2", "scan LZRTS0002"),
    ("size-measured", "scan DIM:60x40x30"),
    ("size-too-big", "scan DIM:120x30x20"),
    ("close-weigh-first", "key ok"),
    ("weighed-over-50-kg", "weight 51000"),
    ("weighed", "weight 2000"),
    ("closed", "key ok"),
    ("scale-emptied", "weight 0"),
    ("pickup-badge", "key mode"),
    ("pickup-unknown-badge", "scan DRV:NOBODY"),
    ("pickup-pin", "scan BADGE-042"),
    ("pickup-pin-digit", "key up"),
    ("pickup-wrong-pin", "scan PIN:0000"),
    ("pickup-signed-in", f"scan PIN:{PIN}"),
    ("pickup-bag-scanned", f"scan {BAG}"),
    ("pickup-scanned-already", f"scan {BAG}"),
    ("pickup-list", "key down"),
    ("pickup-refuse", "key cancel"),
    ("pickup-refuse-reason", "key down"),
    ("pickup-refused", "key ok"),
    ("pickup-handover", "key ok"),
    ("hub", "key mode"),
    ("hub-unknown-bag", "scan BS0000000999"),
    ("hub-bag", f"scan {LISTED}"),
    ("hub-bag-weighed", "weight 30100"),
    ("hub-received", "key ok"),
    ("hub-short-bag", f"scan {SHORT}"),
    ("hub-short-weighed", "weight 20000"),
    ("hub-exception", "key ok"),
)


def _screen_event(obj: dict) -> bool:
    """A screen change, not a reply to state, mem, screenshot or a bad command."""
    return "screen" in obj and not {"journal_depth", "mem_alloc", "saved", "error"} & set(obj)


def _settled(ctl: Handheld, quiet: float = 0.5) -> dict:
    """The step's screen: its first event (raises ControlError if none comes, a handheld out
    of memory), then the last once none has come for quiet seconds (a weight takes a few
    conversions to settle)."""
    last = ctl.expect(_screen_event, timeout=10)
    while True:
        try:
            last = ctl.expect(_screen_event, timeout=quiet)
        except ControlError:
            return last


def tour(ctl: Handheld, shots: Path | None = None) -> list[tuple[str, dict]]:
    """Walk STEPS on a started handheld; returns (name, its screen event) for each step. With
    shots, each screen is saved there as <name>.pbm (the simulator's screenshot command).
    Raises ControlError at a step whose screen does not come."""
    seen: list[tuple[str, dict]] = []
    for name, command in STEPS:
        if command:
            ctl.send(command)
        try:
            seen.append((name, _settled(ctl)))
        except ControlError as e:
            raise ControlError(f"no screen at {name}: {e}") from None
        if shots is not None:
            ctl.send(f"screenshot {shots / (name + '.pbm')}")
            ctl.expect(lambda o: "saved" in o)
    return seen
