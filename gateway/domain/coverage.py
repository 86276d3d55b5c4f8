"""Pickup coverage (the manual's tables in gateway/data/) and the Milkrun eligibility check.

The tables are transcribed from the manual as printed: Milkrun districts of Shenzhen,
Dongguan, Guangzhou, Foshan, Hangzhou and Jinhua, and the paid-pickup cities. The paid table
in the text lists 27 provinces and 203 distinct cities, as the manual says (its 湖南省 row is
printed twice). Names are matched after dropping administrative suffixes (省, 市, 区, 县, 镇,
自治区 ...), so "深圳市" and "深圳", or "广西壮族自治区" and the manual's "广西省", agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

# docs/domain.md, "Milkrun eligibility": average orders/day over the last 30 days.
WINDOW_DAYS = 30
MIN_DAILY_ORDERS_MAINLAND = 50
MIN_DAILY_ORDERS_HONG_KONG = 30

# Reason codes for the admin page.
NOT_IN_COVERAGE = "NOT_IN_COVERAGE"
TOO_FEW_ORDERS = "TOO_FEW_ORDERS"

# Longest first, so "光明新区" loses "新区" and not just "区".
_SUFFIXES = (
    "特别行政区",
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "自治区",
    "新区",
    "省",
    "市",
    "区",
    "县",
    "镇",
)


def normalize(name: str) -> str:
    """A place name without its administrative suffix: "深圳市" -> "深圳"."""
    name = name.strip()
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class Address:
    """A pickup address, as far as coverage cares. `district` also takes towns (镇)."""

    province: str
    city: str
    district: str = ""


# Next to this package, not via importlib.resources("gateway"): under pytest the folder
# tests/gateway can shadow the package name as a namespace package.
DATA = Path(__file__).resolve().parent.parent / "data"


def _load(name: str) -> dict:
    return json.loads((DATA / name).read_text("utf-8"))


@cache
def milkrun_table() -> dict:
    """The raw Milkrun table (gateway/data/milkrun_coverage.json)."""
    return _load("milkrun_coverage.json")


@cache
def paid_table() -> dict:
    """The raw paid-pickup table (gateway/data/paid_coverage.json)."""
    return _load("paid_coverage.json")


@cache
def _milkrun_index() -> frozenset[tuple[str, str, str]]:
    return frozenset(
        (normalize(row["province"]), normalize(row["city"]), normalize(d))
        for row in milkrun_table()["rows"]
        for d in row["districts"]
    )


@cache
def _milkrun_county_index() -> frozenset[tuple[str, str]]:
    # County-level cities (义乌市, 东阳市 ...) are often written as the address's city.
    return frozenset((province, district) for province, _, district in _milkrun_index())


@cache
def _paid_index() -> frozenset[tuple[str, str]]:
    return frozenset(
        (normalize(row["province"]), normalize(city))
        for row in paid_table()["rows"]
        for city in row["cities"]
    )


def is_hong_kong(address: Address) -> bool:
    return normalize(address.province) == "香港" or normalize(address.city) == "香港"


def milkrun_covers(address: Address) -> bool:
    """True when Milkrun picks up at this address.

    Hong Kong: the manual says its Milkrun range is "unchanged" and lists no districts;
    (product choice) every Hong Kong address counts as covered, and the Hong Kong warehouse
    confirms each pickup by phone anyway.
    """
    if is_hong_kong(address):
        return True
    province, city = normalize(address.province), normalize(address.city)
    return (province, city, normalize(address.district)) in _milkrun_index() or (
        province,
        city,
    ) in _milkrun_county_index()


def paid_covers(address: Address) -> bool:
    """True when paid pickup serves this address's city.

    Some entries are county-level cities or towns (晋江, 常熟, 义乌, 白沟): an address whose
    district is one of them is covered too.
    """
    province = normalize(address.province)
    index = _paid_index()
    return (province, normalize(address.city)) in index or (
        bool(address.district) and (province, normalize(address.district)) in index
    )


@dataclass(frozen=True)
class Order:
    """One order of the seller (or of the joint applicants) for the volume test."""

    placed_at: datetime
    campaign: bool = False  # Lazada campaign (大促) order
    overseas_warehouse: bool = False  # 海外仓
    resale: bool = False  # 二次销售

    @property
    def counts(self) -> bool:
        # The manual excludes campaign, overseas-warehouse and resale orders.
        return not (self.campaign or self.overseas_warehouse or self.resale)


def average_daily_orders(orders: Iterable[Order], now: datetime, days: int = WINDOW_DAYS) -> float:
    """Counted orders placed in [now - days, now), divided by `days` (days without orders count)."""
    start = now - timedelta(days=days)
    return sum(1 for o in orders if o.counts and start <= o.placed_at < now) / days


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reasons: tuple[str, ...]  # empty when eligible
    average_daily_orders: float
    required: int


def milkrun_eligibility(address: Address, orders: Iterable[Order], now: datetime) -> Eligibility:
    """The manual's two conditions: address in coverage, and enough orders per day.

    Several sellers may apply jointly for one pickup address: (product choice) pass all the
    applicants' orders and they are counted together.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    required = MIN_DAILY_ORDERS_HONG_KONG if is_hong_kong(address) else MIN_DAILY_ORDERS_MAINLAND
    average = average_daily_orders(orders, now)
    reasons = []
    if not milkrun_covers(address):
        reasons.append(NOT_IN_COVERAGE)
    if average < required:
        reasons.append(TOO_FEW_ORDERS)
    return Eligibility(not reasons, tuple(reasons), average, required)


# Why a pickup address is refused when it is added (docs/domain.md, "Milkrun eligibility").
OUTSIDE_SERVICE_HOURS = "OUTSIDE_SERVICE_HOURS"


@dataclass(frozen=True)
class AddressRefusal:
    code: str
    field: str  # the request field at fault
    message: str  # names the manual's rule


def pickup_refusal(
    service: str, address: Address, daily_orders: float | None = None
) -> AddressRefusal | None:
    """Why `address` cannot be a pickup address of `service` ("milkrun" or "paid"), or None.

    Paid pickup: the city (or a county-level city or town given as district) is in the paid
    table. Milkrun: the district is in the Milkrun table, and the seller's average orders a
    day over the last 30 days (`daily_orders`, the figure of its application, without
    campaign, overseas-warehouse and resale orders) reach the manual's minimum.
    """
    place = " ".join(p for p in (address.province, address.city, address.district) if p)
    if service == "paid":
        if paid_covers(address):
            return None
        return AddressRefusal(
            NOT_IN_COVERAGE,
            "city",
            f"paid pickup does not serve {place or 'an address without a city'}: the manual's "
            "paid-pickup coverage lists 27 provinces and 203 cities",
        )
    if not milkrun_covers(address):
        return AddressRefusal(
            NOT_IN_COVERAGE,
            "district",
            f"Milkrun does not serve {place or 'an address without a district'}: its coverage "
            "is the manual's districts of Shenzhen, Dongguan, Guangzhou, Foshan, Hangzhou and "
            "Jinhua, and Hong Kong",
        )
    required = MIN_DAILY_ORDERS_HONG_KONG if is_hong_kong(address) else MIN_DAILY_ORDERS_MAINLAND
    if daily_orders is None or daily_orders < required:
        region = "Hong Kong" if is_hong_kong(address) else "the mainland"
        return AddressRefusal(
            TOO_FEW_ORDERS,
            "orders_per_day",
            f"Milkrun in {region} needs an average of at least {required} orders a day over "
            f"the last {WINDOW_DAYS} days (without campaign, overseas-warehouse and resale "
            f"orders); the application gives {daily_orders if daily_orders is not None else 0:g}",
        )
    return None
