"""The bag list's columns, defined once for the admin page, its CSV export and the API.

To add a column: one Column in COLUMNS (and, when the page shows it, its header's Chinese in
gateway/web/i18n.py). `page` is the admin page's header (None: not on the page), `csv` the
CSV's header (None: not in the CSV), `api` whether GET /api/bags (and one bag) carries it
under `key`. Times are UTC datetimes here; each output writes them its own way.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.domain import lifecycle
from gateway.domain.deadlines import DEFAULT_TZ
from gateway.models import Bag

# Bags the driver has not taken yet: they become late when their pickup deadline passes.
WAITING = (lifecycle.SUBMITTED, lifecycle.AWAITING_BAG_NUMBER, lifecycle.AWAITING_PICKUP)


def is_late(bag: Bag, now: datetime) -> bool:
    """Picked up after its deadline, or still waiting for the driver past it (the page's
    red rows and the CSV's late column)."""
    if bag.pickup_due_at is None:
        return False
    if bag.picked_up_at is not None:
        return bag.picked_up_at > bag.pickup_due_at
    return bag.status in WAITING and now > bag.pickup_due_at


def _late_by_now(bag: Bag, now: datetime) -> bool | None:
    """The API's `late`: picked up (or, not yet, now) after the deadline; None without one."""
    if bag.pickup_due_at is None:
        return None
    return (bag.picked_up_at or now) > bag.pickup_due_at


@dataclass(frozen=True)
class Column:
    key: str
    value: Callable[[Bag, datetime], object]  # (bag, now) -> the cell's value
    page: str | None = None
    csv: str | None = None
    api: bool = True
    number: bool = False  # right-aligned on the page


def _field(name: str) -> Callable[[Bag, datetime], object]:
    return lambda bag, _now: getattr(bag, name)


COLUMNS = (
    Column("bag_no", _field("bag_no"), page="Bag number", csv="bag_no"),
    Column("status", _field("status"), page="Status", csv="status"),
    Column("status_zh", lambda bag, _now: lifecycle.LABELS_ZH.get(bag.status)),
    Column("seller_id", _field("seller_id"), page="Seller", csv="seller_id"),
    Column("account_id", _field("account_id")),
    Column("service", _field("service")),
    Column("parcel_count", _field("parcel_count"), page="Parcels", csv="parcels", number=True),
    Column("weight_g", _field("weight_g"), page="Weight (g)", csv="weight_g", number=True),
    Column("dims_cm", _field("dims_cm")),
    Column("device_id", _field("device_id"), page="Device", csv="device_id"),
    Column("opened_at", _field("opened_at")),
    Column("closed_at", _field("closed_at"), page="Closed", csv="closed_at"),
    Column("pickup_due_at", _field("pickup_due_at"), page="Pickup due", csv="pickup_due_at"),
    Column("picked_up_at", _field("picked_up_at"), csv="picked_up_at"),
    Column("late", _late_by_now),
    Column("late_admin", is_late, csv="late", api=False),
    Column("disagreement_count", _field("disagreement_count")),
)
PAGE_COLUMNS = tuple(c for c in COLUMNS if c.page is not None)
CSV_COLUMNS = tuple(c for c in COLUMNS if c.csv is not None)
API_COLUMNS = tuple(c for c in COLUMNS if c.api)


def as_json(bag: Bag, now: datetime) -> dict[str, object]:
    """The bag as the API lists it: times in ISO 8601, absent values null."""
    out = {}
    for column in API_COLUMNS:
        value = column.value(bag, now)
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


# docs/domain.md "Time zone": the admin page and its CSV show China time.
_CSV_ZONE = ZoneInfo(DEFAULT_TZ)
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        # China time, like the page, with its offset named (2026-12-06T09:30:00+08:00).
        return value.astimezone(_CSV_ZONE).isoformat()
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_header() -> list[str]:
    return [str(c.csv) for c in CSV_COLUMNS]


def csv_row(bag: Bag, now: datetime) -> list[str]:
    return [csv_cell(c.value(bag, now)) for c in CSV_COLUMNS]
