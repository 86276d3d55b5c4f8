"""Coverage tables transcribed from the manual, and the Milkrun eligibility check."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.domain.coverage import (
    NOT_IN_COVERAGE,
    TOO_FEW_ORDERS,
    Address,
    Order,
    milkrun_covers,
    milkrun_eligibility,
    milkrun_table,
    normalize,
    paid_covers,
    paid_table,
)

# The manual's coverage pages, verbatim (the whole manual is not part of the repository).
MANUAL = Path(__file__).with_name("data") / "manual_coverage.zh.txt"
NOW = datetime(2026, 8, 31, 16, 0, tzinfo=UTC)


def test_paid_table_holds_the_manuals_27_provinces_and_203_cities():
    rows = paid_table()["rows"]
    provinces = {r["province"] for r in rows}
    cities = {(r["province"], c) for r in rows for c in r["cities"]}
    assert len(provinces) == 27 and len(cities) == 203
    assert paid_table()["manual_claims"] == {"provinces": 27, "cities": 203}
    # FAQ 14: "广东省19城市".
    assert sum(len(r["cities"]) for r in rows if r["province"] == "广东省") == 19
    # 湖南省 is printed twice in the manual, identically.
    hunan = [r["cities"] for r in rows if r["province"] == "湖南省"]
    assert hunan == [["郴州", "邵阳", "湘潭", "岳阳", "长沙"]] * 2


def test_milkrun_table_holds_the_manuals_districts():
    counts = {r["city"]: len(r["districts"]) for r in milkrun_table()["rows"]}
    assert counts == {"深圳市": 9, "东莞市": 19, "广州市": 9, "佛山市": 2, "杭州市": 6, "金华市": 4}
    assert milkrun_table()["hong_kong"]["policy"] == "unchanged"


def test_every_transcribed_name_is_in_the_manual_text():
    pages = "".join(line for line in MANUAL.read_text("utf-8").splitlines() if line[:1] != "#")
    text = re.sub(r"\s", "", pages)
    start = text.index("MilkRun免费揽收覆盖范围")
    coverage = text[start : text.index("官方揽收服务订购", start)]
    for row in milkrun_table()["rows"] + paid_table()["rows"]:
        assert row["province"] in coverage
        for name in row.get("cities", []) + row.get("districts", []) + [row.get("city", "")]:
            assert name in coverage, name
    paid = coverage[coverage.index("付费揽收覆盖范围") :]
    for row in paid_table()["rows"]:
        # each printed row: province then its cities in order, separated by 、
        assert row["province"] + "、".join(row["cities"]) in paid, row["province"]


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("深圳市", "深圳"),
        ("光明新区", "光明"),
        ("光明区", "光明"),
        ("广西壮族自治区", "广西"),
        ("广西省", "广西"),
        ("宁夏回族自治区", "宁夏"),
        ("香港特别行政区", "香港"),
        ("长安镇", "长安"),
        ("吉林市", "吉林"),
        ("北京", "北京"),
    ],
)
def test_names_match_without_administrative_suffixes(name, short):
    assert normalize(name) == short


@pytest.mark.parametrize(
    ("address", "covered"),
    [
        (Address("广东省", "深圳市", "南山区"), True),
        (Address("广东", "深圳", "光明区"), True),  # 光明新区 in the manual, renamed since
        (Address("广东省", "东莞市", "长安镇"), True),
        (Address("广东省", "佛山市", "顺德区"), False),
        (Address("浙江省", "杭州市", "西湖区"), False),
        (Address("浙江省", "金华市", "义乌市"), True),
        (Address("浙江省", "义乌市", "稠城街道"), True),  # county-level city written as city
        (Address("浙江省", "金华市", "婺城区"), False),
        (Address("福建省", "厦门市", "思明区"), False),
        (Address("香港", "香港", "观塘区"), True),  # "unchanged": all Hong Kong (product choice)
    ],
)
def test_milkrun_coverage(address, covered):
    assert milkrun_covers(address) is covered


@pytest.mark.parametrize(
    ("address", "covered"),
    [
        (Address("广东省", "深圳市", "南山区"), True),
        (Address("广西壮族自治区", "南宁市"), True),
        (Address("内蒙古自治区", "包头市"), True),
        (Address("河北省", "保定市", "白沟镇"), True),  # a town the manual lists as a city
        (Address("江苏省", "苏州市", "吴江区"), True),
        (Address("江苏省", "苏州市", "姑苏区"), False),  # only Suzhou's counties are listed
        (Address("西藏自治区", "拉萨市"), False),
        (Address("湖南省", "长沙市"), True),
        (Address("吉林省", "吉林市"), True),
    ],
)
def test_paid_coverage(address, covered):
    assert paid_covers(address) is covered


def orders_per_day(per_day: int, days: int = 30, **kind: bool) -> list[Order]:
    return [
        Order(NOW - timedelta(days=d, hours=1), **kind) for d in range(days) for _ in range(per_day)
    ]


SHENZHEN = Address("广东省", "深圳市", "宝安区")
HONG_KONG = Address("香港特别行政区", "香港", "葵青区")


def test_mainland_seller_with_50_orders_a_day_is_eligible():
    result = milkrun_eligibility(SHENZHEN, orders_per_day(50), NOW)
    assert result.eligible and result.reasons == () and result.average_daily_orders == 50


def test_mainland_seller_one_order_short_of_50_a_day_is_not():
    orders = orders_per_day(50)[1:]
    result = milkrun_eligibility(SHENZHEN, orders, NOW)
    assert not result.eligible and result.reasons == (TOO_FEW_ORDERS,)
    assert result.required == 50


def test_hong_kong_needs_30_a_day():
    assert milkrun_eligibility(HONG_KONG, orders_per_day(30), NOW).eligible
    result = milkrun_eligibility(HONG_KONG, orders_per_day(29), NOW)
    assert result.reasons == (TOO_FEW_ORDERS,) and result.required == 30


@pytest.mark.parametrize("kind", ["campaign", "overseas_warehouse", "resale"])
def test_campaign_overseas_warehouse_and_resale_orders_do_not_count(kind):
    orders = orders_per_day(40) + orders_per_day(20, **{kind: True})
    assert milkrun_eligibility(SHENZHEN, orders, NOW).average_daily_orders == 40


def test_only_the_last_30_days_count():
    old = [Order(NOW - timedelta(days=31)) for _ in range(5000)]
    future = [Order(NOW + timedelta(minutes=1)) for _ in range(5000)]
    assert milkrun_eligibility(SHENZHEN, old + future, NOW).average_daily_orders == 0


def test_an_address_outside_coverage_is_refused_with_both_reasons_listed():
    result = milkrun_eligibility(Address("广东省", "佛山市", "顺德区"), orders_per_day(10), NOW)
    assert result.reasons == (NOT_IN_COVERAGE, TOO_FEW_ORDERS)
    result = milkrun_eligibility(Address("广东省", "佛山市", "顺德区"), orders_per_day(80), NOW)
    assert result.reasons == (NOT_IN_COVERAGE,)
