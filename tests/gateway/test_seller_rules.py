"""Seller rules at the gateway: pickup addresses checked against the manual's coverage and
Milkrun eligibility tables, the Milkrun window of the seller's agreement, the baggable hubs
setting with FM-49 mixing refused in both orders, and parcels in transit past 72 h (FAQ 9)."""

from datetime import UTC, datetime, timedelta

import pytest
from test_registry import bag_and_close, load_bag, picked_up_bag

from gateway import clock, db
from gateway.models import Device
from gateway.services import device_config, transit
from protocol import rules

MILKRUN_SZ = {
    "kind": "pickup",
    "service": "milkrun",
    "warehouse_name": "南山仓",
    "province": "广东省",
    "city": "深圳市",
    "district": "南山区",
    "street": "科技园 1 号",
    "pickup_window": "10:00-12:00",
    "orders_per_day": 50,
}


@pytest.fixture
def account(api):
    status, body = api.post("/api/accounts", {"name": "新商家"})
    assert status == 201
    return body["id"]


def add(api, account, **changes):
    return api.post(f"/api/accounts/{account}/addresses", MILKRUN_SZ | changes)


def test_a_milkrun_address_in_coverage_with_enough_orders_is_added_with_its_window(api, account):
    status, body = add(api, account)
    assert status == 201 and body["pickup_window"] == "10:00-12:00"


@pytest.mark.parametrize(
    ("changes", "code", "field", "words"),
    [
        ({"city": "杭州市", "district": "西湖区"}, "NOT_IN_COVERAGE", "district", "Milkrun"),
        ({"orders_per_day": 49}, "TOO_FEW_ORDERS", "orders_per_day", "at least 50"),
        (
            {"province": "香港", "city": "香港", "district": "观塘区", "orders_per_day": 29},
            "TOO_FEW_ORDERS",
            "orders_per_day",
            "at least 30",
        ),
        ({"pickup_window": "07:00-09:00"}, "OUTSIDE_SERVICE_HOURS", "pickup_window", "08:00-19:00"),
        (
            {"service": "paid", "pickup_window": None, "province": "西藏自治区", "city": "拉萨市"},
            "NOT_IN_COVERAGE",
            "city",
            "paid pickup",
        ),
    ],
)
def test_an_address_outside_the_manuals_tables_is_refused_naming_the_rule(
    api, account, changes, code, field, words
):
    body = MILKRUN_SZ | changes
    body = {k: v for k, v in body.items() if v is not None}
    if body["service"] == "paid":
        body.pop("orders_per_day")
    status, answer = api.post(f"/api/accounts/{account}/addresses", body)
    assert status == 409, answer
    assert (answer["error"]["code"], answer["error"]["field"]) == (code, field)
    assert words in answer["error"]["message"]


def test_hong_kong_needs_30_orders_a_day(api, account):
    hk = {"province": "香港", "city": "香港", "district": "观塘区", "orders_per_day": 30}
    assert add(api, account, **hk)[0] == 201


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"pickup_window": None}, "pickup_window"), ({"orders_per_day": None}, "orders_per_day")],
)
def test_a_milkrun_address_needs_its_agreement(api, account, changes, field):
    body = {k: v for k, v in (MILKRUN_SZ | changes).items() if v is not None}
    status, answer = api.post(f"/api/accounts/{account}/addresses", body)
    assert status == 400 and answer["error"]["field"] == field


def test_a_milkrun_bag_is_due_by_the_end_of_the_agreed_window(app, world):
    # The world's agreement: 15:00-19:00. Closed 15:02 in Shenzhen: the window had begun.
    bag_no = world.seller.bag(0)
    bag_and_close(
        world.seller, bag_no, world.parcels[:1], at=datetime(2026, 8, 8, 7, 0, tzinfo=UTC)
    )
    assert load_bag(app, bag_no).pickup_due_at == datetime(2026, 8, 9, 11, 0, tzinfo=UTC)


def test_the_handhelds_get_the_baggable_hubs_setting(app, world):
    app.config["BAGGABLE_HUBS"] = ["SZ", "YW", "FM-49"]
    with db.sessions(app)() as session:
        config = device_config.build(session, session.get(Device, "hh-seller"))
    assert config["baggable_hubs"] == ["SZ", "YW", "FM-49"]


@pytest.fixture
def fm49_parcels(api, world):
    rows = [
        {"tracking_no": f"LZFM49{i:05d}", "seller_id": "1000123", "status": "rts", "hub": "FM-49"}
        for i in range(2)
    ]
    assert api.post("/api/parcels", {"parcels": rows})[0] == 200
    return [r["tracking_no"] for r in rows]


def held_out(app, bag_no):
    return [(p.tracking_no, p.held_out) for p in load_bag(app, bag_no).held_out_parcels]


def test_fm49_and_other_parcels_are_refused_together_in_both_orders(app, world, fm49_parcels):
    app.config["BAGGABLE_HUBS"] = ["SZ", "YW", "FM-49"]
    sz, fm49 = world.parcels, fm49_parcels
    first, second = world.seller.bag(0), world.seller.bag(1)
    bag_and_close(world.seller, first, [fm49[0], sz[0]])
    bag_and_close(world.seller, second, [sz[1], fm49[1]])
    assert held_out(app, first) == [(sz[0], rules.FM49_MIX)]
    assert held_out(app, second) == [(fm49[1], rules.FM49_MIX)]
    assert [p.tracking_no for p in load_bag(app, first).parcels] == [fm49[0]]


def test_by_default_fm49_is_not_baggable_faq_10(app, world, fm49_parcels):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, [fm49_parcels[0]])
    assert held_out(app, bag_no) == [(fm49_parcels[0], rules.HUB_NOT_BAGGABLE)]


def test_a_parcel_in_transit_past_72_hours_is_flagged(app, api, world):
    bag_no = picked_up_bag(app, world)  # picked up at T0 + 1 h
    trk = world.parcels[0]
    picked = load_bag(app, bag_no).picked_up_at
    try:
        clock.freeze(picked + timedelta(hours=72))
        assert api.get(f"/api/parcels/{trk}")[1]["in_transit_overdue"] is False
        clock.advance(timedelta(seconds=1))
        assert api.get(f"/api/parcels/{trk}")[1]["in_transit_overdue"] is True
        with db.sessions(app)() as session:
            assert [b.bag_no for b in transit.overdue_bags(session, clock.now())] == [bag_no]
        # The hub signs for the parcel: it is no longer in transit.
        assert api.post("/api/hub/receipts", {"parcels": [trk]})[0] == 200
        assert api.get(f"/api/parcels/{trk}")[1]["in_transit_overdue"] is False
    finally:
        clock.init_app(app)
