"""The gateway's re-check of a device's decision to add a parcel to a bag.

The rules, their order and codes are protocol/rules.py's (RULES, refusal), the ones the
handheld runs; this module gives them the facts the gateway knows (parcel status, other bags,
linked stores) and the messages the admin page shows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from protocol import config_schema, rules
from protocol.rules import (
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

# Parcel statuses, as the config message's parcel entries carry them (protocol/config_schema.py).
PARCEL_STATUSES = config_schema.STATUSES
# created, seller has not confirmed ready-to-ship; ready to ship; cancelled; already signed in
# at a sorting center
PENDING, RTS, PARCEL_CANCELLED, PARCEL_RECEIVED = PARCEL_STATUSES

# Hubs (sorting centers / channels).
HUBS = config_schema.HUBS
SZ, YW, FM49, HK, KR = HUBS


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


def _facts(parcel: ParcelFacts, bag: BagFacts) -> dict:
    """The arguments of rules.refusal for adding parcel to bag."""
    fm49 = sum(1 for hub in bag.hubs if hub == FM49)
    return {
        "twice": parcel.tracking_no in bag.tracking_nos,
        "elsewhere": parcel.in_bag is not None and parcel.in_bag != bag.bag_no,
        # A parcel entry of the config message: [status, hub, seller, sea big item].
        "facts": (parcel.status, parcel.hub, parcel.seller_id, parcel.sea_big_item),
        "settings": {"stores": bag.linked_seller_ids, "baggable_hubs": bag.baggable_hubs},
        "n": len(bag.tracking_nos),
        "fm49": fm49,
        "other": len(bag.hubs) - fm49,
        "grams": bag.weight_g + parcel.weight_g,
        "dims": bag.dims_cm,
    }


def check_add(parcel: ParcelFacts, bag: BagFacts) -> str | None:
    """The refusal code for adding `parcel` to `bag`, or None when it may go in."""
    return rules.refusal(**_facts(parcel, bag))


def refusals(parcel: ParcelFacts, bag: BagFacts) -> tuple[str, ...]:
    """Every rule that refuses, in the order of rules.RULES (the admin page lists them all)."""
    facts = _facts(parcel, bag)
    found: list[str] = []
    code = rules.refusal(**facts)
    while code is not None:
        found.append(code)
        code = rules.refusal(**facts, after=code)
    return tuple(found)
