"""A fleet's scenario (tools/scenarios/*.json, docs/tools.md "Scenarios"): which handheld
works for which seller or hub, and the totals the day must produce at the gateway."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from devkit import ROOT
from protocol import rules, wire

SCENARIOS = ROOT / "tools" / "scenarios"
DEFAULT_SCENARIO = SCENARIOS / "day.json"
STEP_KINDS = ("bag", "outage", "sync", "pickup", "arrive")
# The courier's reasons, in the order the handheld offers them.
REFUSE_REASONS = wire.REFUSE_REASONS
# A parcel the platform lists in one of these states is refused by the handheld from its
# parcel-state cache (firmware/app/bagging.py).
NOT_BAGGABLE = {
    "pending": rules.NOT_RTS,
    "cancelled": rules.CANCELLED,
    "received": rules.ALREADY_RECEIVED,
}
DUPLICATE = rules.DUPLICATE
# The config message carries about 300 parcels of an account (docs/api.md, "Device config").
MAX_CACHED_PARCELS = 250


class ScenarioError(ValueError):
    pass


@dataclass
class Device:
    device_id: str
    role: str  # "seller" (bags, and the driver picks up on it) or "hub"
    site: str  # seller id or hub id
    # live figures for the display and the result
    step: str = "starting"
    bags: int = 0
    parcels: int = 0
    refused: int = 0
    done: int = 0  # bags picked up (seller) or received (hub)
    depth: int | None = None
    connected: bool | None = None
    screen: str = ""
    error: str = ""
    closed: dict = field(default_factory=dict)  # bag_no -> {"parcels": [...], "grams": g}


@dataclass
class Plan:
    scenario: dict
    devices: list[Device]
    bags: int = 0
    parcels: int = 0
    refused_scans: int = 0
    handovers: int = 0
    receipts: int = 0
    statuses: dict = field(default_factory=dict)
    refusals: dict = field(default_factory=dict)  # refusal code -> scans refused with it

    def totals(self) -> dict:
        return {
            "bags": self.bags,
            "parcels": self.parcels,
            "refused_scans": self.refused_scans,
            "refusals": {k: v for k, v in sorted(self.refusals.items()) if v},
            "handovers": self.handovers,
            "receipts": self.receipts,
            "statuses": {k: v for k, v in sorted(self.statuses.items()) if v},
        }


def plan(scenario: dict, devices: int | None = None) -> Plan:
    """Assign handhelds to sellers and hubs; count what the day must produce.

    devices overrides the fleet size: hubs keep their handhelds, the others go to the sellers
    in turn."""
    sellers = scenario.get("sellers") or []
    if not sellers:
        raise ScenarioError("a scenario needs at least one seller")
    hubs = scenario.get("hubs", [])
    if devices is None:
        per_seller = [int(s.get("handhelds", 1)) for s in sellers]
    else:
        spare = devices - len(hubs)
        if spare < len(sellers):
            raise ScenarioError(
                f"{devices} handhelds: {len(hubs)} for hubs leave fewer than one per seller "
                f"({len(sellers)})"
            )
        per_seller = [
            spare // len(sellers) + (i < spare % len(sellers)) for i in range(len(sellers))
        ]
    drivers = {d["id"] for d in scenario.get("drivers", [])}
    for seller in sellers:
        if seller.get("driver") and seller["driver"] not in drivers:
            raise ScenarioError(f"seller {seller['id']}: no driver {seller['driver']!r}")
    prefix = scenario.get("prefix", "fleet")
    fleet = []
    for seller, count in zip(sellers, per_seller, strict=True):
        for n in range(1, count + 1):
            fleet.append(Device(f"{prefix}-{seller['id']}-{n}".lower(), "seller", seller["id"]))
    for hub in hubs:
        fleet.append(Device(f"{prefix}-{hub['id']}".lower(), "hub", hub["id"]))
    result = Plan(scenario, fleet)
    bags_of = {s["id"]: 0 for s in sellers}  # per seller
    cached = {s["id"]: 0 for s in sellers}  # parcels imported for the seller
    status = result.statuses
    codes = result.refusals
    for step in flatten(scenario.get("day", [])):
        if step["do"] == "bag":
            bad = bad_parcels(step)
            for seller, count in zip(sellers, per_seller, strict=True):
                bags = int(step.get("bags", 1)) * count
                bags_of[seller["id"]] += bags
                cached[seller["id"]] += bags * (int(step.get("parcels", 5)) + len(bad))
                result.bags += bags
                result.parcels += bags * int(step.get("parcels", 5))
                duplicates = bags * int(step.get("duplicates", 0))
                codes[DUPLICATE] = codes.get(DUPLICATE, 0) + duplicates
                for state in bad:
                    codes[NOT_BAGGABLE[state]] = codes.get(NOT_BAGGABLE[state], 0) + bags
                result.refused_scans += duplicates + bags * len(bad)
            status["awaiting_pickup"] = result.bags - sum(
                v for k, v in status.items() if k != "awaiting_pickup"
            )
        elif step["do"] == "pickup":
            refused = _refusals(step, bags_of)
            waiting = status.get("awaiting_pickup", 0)
            visited = [s for s in sellers if s.get("driver") and bags_of[s["id"]]]
            picked = sum(bags_of[s["id"]] for s in visited) - len(refused)
            result.handovers += len(visited)
            result.receipts += len(visited)
            status["pickup_failed"] = status.get("pickup_failed", 0) + len(refused)
            status["picked_up"] = status.get("picked_up", 0) + picked
            status["awaiting_pickup"] = waiting - picked - len(refused)
        elif step["do"] == "arrive":
            heavier = len(step.get("heavier", []))
            arrived = status.get("picked_up", 0)
            if heavier > arrived:
                raise ScenarioError("arrive: more heavier bags than bags picked up")
            status["picked_up"] = 0
            status["received"] = status.get("received", 0) + arrived - heavier
            status["received_exception"] = status.get("received_exception", 0) + heavier
    for seller_id, n in cached.items():
        if n > MAX_CACHED_PARCELS:
            raise ScenarioError(
                f"seller {seller_id}: {n} parcels to import; the handheld's cache holds about "
                f"{MAX_CACHED_PARCELS} (fewer bags or handhelds per seller)"
            )
    expected = scenario.get("expect")
    if devices is None and expected is not None:
        mine = {k: v for k, v in result.totals().items() if k in expected}
        if mine != {k: expected[k] for k in mine}:
            raise ScenarioError(f"the scenario's expect {expected} disagrees with its day {mine}")
    return result


def bad_parcels(step: dict) -> list[str]:
    bad = step.get("not_baggable", [])
    for state in bad:
        if state not in NOT_BAGGABLE:
            raise ScenarioError(f"bag: not_baggable {state!r}: one of {', '.join(NOT_BAGGABLE)}")
    return bad


def _refusals(step: dict, bags_of: dict) -> list[dict]:
    out = step.get("refuse", [])
    for r in out:
        if r.get("seller") not in bags_of or not 1 <= int(r.get("bag", 0)) <= bags_of[r["seller"]]:
            raise ScenarioError(f"pickup refuses {r}: no such bag of that seller")
        if r.get("why") not in REFUSE_REASONS:
            raise ScenarioError(f"pickup refuses {r}: why is one of {', '.join(REFUSE_REASONS)}")
    return out


def flatten(steps: list[dict]) -> list[dict]:
    out = []
    for step in steps:
        if step.get("do") not in STEP_KINDS:
            raise ScenarioError(f"unknown step {step.get('do')!r}; known: {', '.join(STEP_KINDS)}")
        out.append(step)
        if step["do"] == "outage" and "during" in step:
            out += flatten([step["during"]])
    return out


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ScenarioError(f"cannot read scenario {path}: {err}") from None
