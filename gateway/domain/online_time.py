"""A parcel's online time (上网时间) when the hub receives it (docs/domain.md, "Online time")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Reason codes; the admin page shows them next to the time.
PICKUP_SCAN = "PICKUP_SCAN"  # backdated to the pickup scan of the parcel's bag
NO_BAG_DATA = "NO_BAG_DATA"  # never bagged in the system (incl. FAQ 6: thrown into a bag)
BAG_NOT_SCANNED = "BAG_NOT_SCANNED"  # bagged, but the driver never scanned the bag
SCAN_AFTER_RECEIPT = "SCAN_AFTER_RECEIPT"  # clocks disagree: a pickup can't follow receipt

REASONS = {
    PICKUP_SCAN: "online time set back to the pickup scan of the parcel's bag",
    NO_BAG_DATA: "no bagging data for this parcel: online time is its receipt at the hub",
    BAG_NOT_SCANNED: "the parcel's bag was not scanned at pickup: online time is its receipt",
    SCAN_AFTER_RECEIPT: "the bag's pickup scan is later than the receipt (clock error): "
    "online time is the receipt",
}


@dataclass(frozen=True)
class OnlineTime:
    at: datetime
    reason: str

    @property
    def backdated(self) -> bool:
        return self.reason == PICKUP_SCAN

    @property
    def explanation(self) -> str:
        return REASONS[self.reason]


def online_time(
    received_at: datetime,
    bag_no: str | None,
    bag_pickup_scanned_at: datetime | None,
) -> OnlineTime:
    """The parcel's online time on receipt at the hub, and why.

    `bag_no` is the bag the parcel was bagged into according to bagging data (None when
    there is none: never bagged, or put into a bag physically without a scan, FAQ 6);
    `bag_pickup_scanned_at` is when the driver scanned that bag, None if never.
    Precondition from the manual: parcel bagged AND bag scanned at pickup; then the online
    time is set back to the scan (the Aug 8 11:00 / Aug 9 08:00 example).
    """
    if bag_no is None:
        return OnlineTime(received_at, NO_BAG_DATA)
    if bag_pickup_scanned_at is None:
        return OnlineTime(received_at, BAG_NOT_SCANNED)
    if bag_pickup_scanned_at > received_at:
        return OnlineTime(received_at, SCAN_AFTER_RECEIPT)
    return OnlineTime(bag_pickup_scanned_at, PICKUP_SCAN)
