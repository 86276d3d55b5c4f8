"""The gateway's re-check of a device's decision to add a parcel to a bag.

Limits, codes and the size/weight tests come from firmware/app/rules.py, the one definition
the handheld uses too; this module only adds the facts the gateway knows (parcel status,
other bags, linked stores) and the order in which the rules are asked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from firmware.app import rules
from firmware.app.rules import (
    ALREADY_RECEIVED,
    BAG_FULL,
    CANCELLED,
    DUPLICATE,
    FM49_MIX,
    HUB_NOT_BAGGABLE,
    IN_OTHER_BAG,
    MAX_PARCELS,
    MAX_SIDE_CM,
    MAX_SIDES_SUM_CM,
    MAX_WEIGHT_G,
    NOT_RTS,
    OVERSIZE,
    OVERWEIGHT,
    SEA_BIG_ITEM,
    STORE_NOT_LINKED,
)

# Parcel statuses the gateway knows.
PENDING = "pending"  # created, seller has not confirmed ready-to-ship
RTS = "rts"
PARCEL_CANCELLED = "cancelled"
PARCEL_RECEIVED = "received"  # already signed in at a sorting center
PARCEL_STATUSES = (PENDING, RTS, PARCEL_CANCELLED, PARCEL_RECEIVED)

# Hubs (sorting centers / channels).
SZ, YW, FM49, HK, KR = "SZ", "YW", rules.FM49, "HK", "KR"
HUBS = (SZ, YW, FM49, HK, KR)


@dataclass(frozen=True)
class ParcelFacts:
    tracking_no: str
    seller_id: str
    status: str  # one of PARCEL_STATUSES
    hub: str  # one of HUBS
    sea_big_item: bool = False
    in_bag: str | None = None  # bag number the parcel is already in, if any
    weight_g: int = 0  # 0 when unknown: then the bag's measured weight decides

    def __post_init__(self) -> None:
        if self.status not in PARCEL_STATUSES:
            raise ValueError(f"parcel status {self.status!r} not in {PARCEL_STATUSES}")
        if self.hub not in HUBS:
            raise ValueError(f"parcel hub {self.hub!r} not in {HUBS}")


@dataclass(frozen=True)
class BagFacts:
    bag_no: str
    tracking_nos: Collection[str] = ()  # parcels in the bag so far
    hubs: Collection[str] = ()  # their hubs
    linked_seller_ids: Collection[str] = ()  # stores linked under the bagging account
    weight_g: int = 0  # bag weight so far (scale reading, or sum of parcel weights)
    dims_cm: tuple[float, float, float] | None = None  # measured sides, if known
    # FAQ 10: only Shenzhen and Yiwu channels "at present"; a setting, so that FM49_MIX
    # (the manual's own error text) still guards if FM-49 is ever opened to bagging.
    baggable_hubs: Collection[str] = rules.BAGGABLE_HUBS


Rule = Callable[[ParcelFacts, BagFacts], bool]  # True: the parcel is refused

# Asked in order; the first rule that refuses gives the code. Facts about the parcel
# itself come before the bag's limits, so a seller sees the cause that a retry won't fix.
RULES: tuple[tuple[str, Rule], ...] = (
    (DUPLICATE, lambda p, b: p.tracking_no in b.tracking_nos),
    (IN_OTHER_BAG, lambda p, b: p.in_bag is not None and p.in_bag != b.bag_no),
    (ALREADY_RECEIVED, lambda p, b: p.status == PARCEL_RECEIVED),
    (CANCELLED, lambda p, b: p.status == PARCEL_CANCELLED),
    (NOT_RTS, lambda p, b: p.status == PENDING),
    (STORE_NOT_LINKED, lambda p, b: p.seller_id not in b.linked_seller_ids),
    (HUB_NOT_BAGGABLE, lambda p, b: p.hub not in b.baggable_hubs),
    (SEA_BIG_ITEM, lambda p, b: p.sea_big_item),
    (FM49_MIX, lambda p, b: any((h == FM49) != (p.hub == FM49) for h in b.hubs)),
    (BAG_FULL, lambda p, b: len(b.tracking_nos) + 1 > MAX_PARCELS),
    (OVERWEIGHT, lambda p, b: not rules.weight_ok(b.weight_g + p.weight_g)),
    (OVERSIZE, lambda p, b: b.dims_cm is not None and not rules.size_ok(b.dims_cm)),
)

MESSAGES = {
    DUPLICATE: "already in this bag (scanned twice)",
    IN_OTHER_BAG: "already in another bag",
    ALREADY_RECEIVED: "already received at the sorting center: do not ship again",
    CANCELLED: "the parcel is cancelled",
    NOT_RTS: "not ready to ship (RTS) or data error",
    STORE_NOT_LINKED: "the parcel's store is not linked to this account",
    HUB_NOT_BAGGABLE: "only Shenzhen and Yiwu channels may be bagged",
    SEA_BIG_ITEM: "big-item sea freight cannot be picked up this way",
    FM49_MIX: "FM-49 (sea-freight warehouse) parcels cannot share a bag with others",
    BAG_FULL: f"the bag already holds {MAX_PARCELS} parcels",
    OVERWEIGHT: f"the bag would weigh more than {MAX_WEIGHT_G // 1000} kg",
    OVERSIZE: f"a side of {MAX_SIDE_CM} cm or more, or sides over {MAX_SIDES_SUM_CM} cm",
}


def check_add(parcel: ParcelFacts, bag: BagFacts) -> str | None:
    """The refusal code for adding `parcel` to `bag`, or None when it may go in."""
    for code, refuses in RULES:
        if refuses(parcel, bag):
            return code
    return None


def refusals(parcel: ParcelFacts, bag: BagFacts) -> tuple[str, ...]:
    """Every rule that refuses, in order (the admin page lists them all)."""
    return tuple(code for code, refuses in RULES if refuses(parcel, bag))
