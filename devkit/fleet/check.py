"""The fleet's end check: the scenario's plan, the handhelds' own counts and the gateway's
bags, parcels, statuses, handovers and receipts must agree exactly."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devkit.fleet.fleet import Fleet


def differences(fleet: "Fleet") -> list[str]:
    """Differences between the plan, the handhelds and the gateway; empty when all agree."""
    problems = []
    planned = fleet.plan.totals()
    done = fleet.tally()
    for key in ("bags", "parcels", "refused_scans"):
        if done[key] != planned[key]:
            problems.append(f"handhelds did {key} {done[key]}, the scenario plans {planned[key]}")
    closed = {bag: info for d in fleet.plan.devices for bag, info in d.closed.items()}
    ours = {
        b["bag_no"]: b
        for b in fleet.gateway_bags()
        if b["device_id"] in fleet.device_ids() and b["bag_no"] not in fleet.baseline
    }
    if len(ours) != planned["bags"]:
        problems.append(f"gateway has {len(ours)} bags, the scenario plans {planned['bags']}")
    for bag_no, info in closed.items():
        got = ours.get(bag_no)
        if got is None:
            problems.append(f"bag {bag_no} is missing at the gateway")
            continue
        if abs((got["weight_g"] or 0) - info["grams"]) > 2:
            problems.append(
                f"bag {bag_no}: gateway weight {got['weight_g']} g != {info['grams']} g"
            )
        inside = fleet.api(f"/api/bags/{bag_no}")["parcels"]
        if sorted(inside) != sorted(info["parcels"]):
            problems.append(
                f"bag {bag_no}: gateway has parcels {sorted(inside)}, "
                f"the handheld bagged {sorted(info['parcels'])}"
            )
    for worker in fleet.workers.values():
        for trk in worker.refused_parcels:
            bag_no = fleet.api(f"/api/parcels/{trk}")["bag_no"]
            if bag_no is not None:
                problems.append(f"refused parcel {trk} is in bag {bag_no} at the gateway")
    parcels = sum(b["parcel_count"] for b in ours.values())
    if parcels != planned["parcels"]:
        problems.append(f"gateway has {parcels} parcels, the scenario plans {planned['parcels']}")
    statuses: dict[str, int] = {}
    for b in ours.values():
        statuses[b["status"]] = statuses.get(b["status"], 0) + 1
    if statuses != planned["statuses"]:
        problems.append(f"bag statuses {statuses}, the scenario plans {planned['statuses']}")
    if planned["handovers"] or planned["receipts"]:
        handovers = fleet.gateway_handovers()
        receipts = [h for h in handovers if h["receipt"] is not None]
        if len(handovers) != planned["handovers"]:
            problems.append(f"gateway has {len(handovers)} handovers, plan {planned['handovers']}")
        if len(receipts) != planned["receipts"]:
            problems.append(f"gateway has {len(receipts)} receipts, plan {planned['receipts']}")
        fleet.handovers = handovers
    return problems
