"""The JSON API: the bag lifecycle walked end to end, online time, receipts, labels, errors."""

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from test_registry import T0, bag_and_close, picked_up_bag, signed_handover

from devkit.sample_world import SELLER, TOKEN
from gateway import db
from gateway.domain import lifecycle, receipts
from gateway.models import Bag, BagHistory, Device, Parcel, Record
from gateway.models import Receipt as ReceiptRow
from gateway.services import handovers
from gateway.web.openapi import DOCUMENT
from protocol.receipt import door_text

CN = timedelta(hours=8)


def put_bag_in(app, bag_no: str, status: str) -> None:
    """Start a walk from any status: the bag is set there directly, as a fixture."""
    with db.transaction(app) as session:
        bag = session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one()
        bag.status = status


# --- the lifecycle ------------------------------------------------------------------------

ALLOWED = [
    (status, event, to)
    for status, moves in lifecycle.TRANSITIONS.items()
    for event, to in moves.items()
]


@pytest.mark.parametrize(("status", "event", "to"), ALLOWED, ids=lambda v: str(v))
def test_every_allowed_transition(app, api, world, status, event, to):
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", T0, bag=bag_no)
    put_bag_in(app, bag_no, status)
    if event == lifecycle.PICKUP_SCAN:
        world.seller.send("pickup", T0, bag=bag_no, drv="D042")
    elif event == lifecycle.PICKUP_REFUSED:
        world.seller.send("pickup_refuse", T0, bag=bag_no, drv="D042", why="no_goods")
    else:
        code, body = api.post(f"/api/bags/{bag_no}/events", {"event": event, "cause": "test"})
        assert code == 200, body
    code, bag = api.get(f"/api/bags/{bag_no}")
    assert bag["status"] == to
    last = bag["history"][-1]
    assert (last["from"], last["to"]) == (status, to) and last["actor"] and last["cause"]
    assert bag["disagreements"] == []


REFUSED = [
    (status, next(e for e in lifecycle.EVENTS if e not in moves and e != lifecycle.PICKUP_SCAN))
    for status, moves in lifecycle.TRANSITIONS.items()
]


@pytest.mark.parametrize(("status", "event"), REFUSED, ids=lambda v: str(v))
def test_a_refused_transition_of_each_status(app, api, world, status, event):
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", T0, bag=bag_no)
    put_bag_in(app, bag_no, status)
    if event == lifecycle.PICKUP_REFUSED:
        world.seller.send("pickup_refuse", T0, bag=bag_no, drv="D042", why="no_goods")
        code, bag = api.get(f"/api/bags/{bag_no}")
        assert bag["status"] == status
        assert [d["code"] for d in bag["disagreements"]] == ["ILLEGAL_TRANSITION"]
        return
    code, body = api.post(f"/api/bags/{bag_no}/events", {"event": event, "cause": "test"})
    assert code == 409
    assert body["error"]["code"] in ("ILLEGAL_TRANSITION", "CANCEL_AFTER_PICKUP")
    assert api.get(f"/api/bags/{bag_no}")[1]["status"] == status


def test_a_pickup_scan_on_a_final_bag_is_a_disagreement(app, api, world):
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", T0, bag=bag_no)
    put_bag_in(app, bag_no, lifecycle.CANCELLED)
    world.seller.send("pickup", T0, bag=bag_no, drv="D042")
    bag = api.get(f"/api/bags/{bag_no}")[1]
    assert bag["status"] == "cancelled" and bag["picked_up_at"] is None
    assert [d["code"] for d in bag["disagreements"]] == ["ILLEGAL_TRANSITION"]


def test_cancel_before_pickup(api, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    code, bag = api.post(f"/api/bags/{bag_no}/cancel", {"reason": "seller changed mind"})
    assert code == 200 and bag["status"] == "cancelled"
    assert [h["to"] for h in bag["history"]][-2:] == ["cancelling", "cancelled"]


def test_cancel_after_the_pickup_scan_is_refused(app, api, world):
    bag_no = picked_up_bag(app, world)
    code, body = api.post(f"/api/bags/{bag_no}/cancel")
    assert code == 409
    assert body["error"]["code"] == "CANCEL_AFTER_PICKUP"
    assert "can no longer be cancelled" in body["error"]["message"]
    assert api.get(f"/api/bags/{bag_no}")[1]["status"] == "picked_up"


def test_bag_detail_and_list(app, api, world):
    bag_no = picked_up_bag(app, world)
    code, bag = api.get(f"/api/bags/{bag_no}")
    assert code == 200
    assert bag["parcels"] == world.parcels[:1] and bag["parcel_count"] == 1
    assert bag["weight_g"] == 10000 and bag["driver"] == {"id": "D042", "name": "王师傅"}
    assert bag["picked_up_at"] == (T0 + timedelta(hours=1)).isoformat()
    code, page = api.get(f"/api/bags?status=picked_up&seller_id={SELLER[0]}&per_page=1")
    assert code == 200 and page["total"] == 1 and page["bags"][0]["bag_no"] == bag_no
    assert api.get("/api/bags?seller_id=nobody")[1]["total"] == 0


# --- online time --------------------------------------------------------------------------


def test_manual_online_time_example_to_the_minute(app, api, world):
    """Bag scanned Aug 8 11:00, parcel received at the hub Aug 9 08:00 -> online Aug 8 11:00."""
    trk = world.parcels[0]
    bag_no = world.seller.bag(0)
    bag_and_close(
        world.seller, bag_no, [trk], at=datetime(2026, 8, 8, 9, 30).replace(tzinfo=UTC) - CN
    )
    scan = datetime(2026, 8, 8, 11, 0, tzinfo=UTC) - CN
    world.seller.send("pickup", scan, bag=bag_no, drv="D042")
    code, body = api.post(
        "/api/hub/receipts", {"parcels": [trk], "received_at": "2026-08-09T08:00:00+08:00"}
    )
    assert code == 200, body
    assert body["parcels"][0]["online_reason"] == "PICKUP_SCAN"
    code, parcel = api.get(f"/api/parcels/{trk}")
    assert parcel["bag_no"] == bag_no and parcel["status"] == "received"
    online = datetime.fromisoformat(parcel["online_at"]).astimezone(UTC) + CN
    received = datetime.fromisoformat(parcel["received_at"]).astimezone(UTC) + CN
    assert online.strftime("%m-%d %H:%M") == "08-08 11:00"
    assert received.strftime("%m-%d %H:%M") == "08-09 08:00"


def test_a_parcel_without_bag_data_keeps_its_receipt_time(api, world):
    code, body = api.post(
        "/api/hub/receipts",
        {"parcels": ["LZLOOSE0001"], "received_at": "2026-08-09T08:00:00+08:00"},
    )
    assert code == 200
    parcel = api.get("/api/parcels/LZLOOSE0001")[1]
    assert parcel["bag_no"] is None and parcel["online_reason"] == "NO_BAG_DATA"
    assert parcel["online_at"] == parcel["received_at"] == "2026-08-09T00:00:00+00:00"


def test_a_bag_never_scanned_gives_its_parcels_their_receipt_time(api, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    api.post(
        "/api/hub/receipts",
        {"parcels": world.parcels[:1], "received_at": "2026-08-09T08:00:00+08:00"},
    )
    parcel = api.get(f"/api/parcels/{world.parcels[0]}")[1]
    assert (
        parcel["online_reason"] == "BAG_NOT_SCANNED"
        and parcel["online_at"] == parcel["received_at"]
    )


def test_a_second_hub_receipt_keeps_the_first(api, world):
    api.post(
        "/api/hub/receipts",
        {"parcels": ["LZLOOSE0001"], "received_at": "2026-08-09T08:00:00+08:00"},
    )
    code, body = api.post("/api/hub/receipts", {"parcels": ["LZLOOSE0001"]})
    assert body["parcels"][0]["already_received"] is True
    assert api.get("/api/parcels/LZLOOSE0001")[1]["received_at"] == "2026-08-09T00:00:00+00:00"


# --- handover receipts --------------------------------------------------------------------


def test_receipt_has_three_copies_that_verify(app, api, world):
    bags = signed_handover(app, world)
    code, h = api.get("/api/handovers/1")
    assert code == 200 and h["signature_ok"] and h["bags"] == bags and h["bag_count"] == 2
    copies = h["receipt"]["copies"]
    assert sorted(copies) == sorted(receipts.COPIES)
    for copy, url in copies.items():
        assert url.startswith(f"https://gw.test/receipts/{h['receipt']['id']}/{copy}?t=")
        path = url.removeprefix("https://gw.test")
        assert api.client.get(path).status_code == 200  # public: no token, no login
        assert api.client.get(path[:-4] + "0000").status_code == 404
    pdf = api.raw("/handovers/1/receipt.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    assert api.client.get("/handovers/1/receipt.pdf").status_code == 401


def test_the_door_code_opens_the_receipt_and_its_pdf_once_synced(app, api, world):
    """What the seller's phone opens from the handheld's QR code (protocol/receipt.py)."""
    signed_handover(app, world)
    h = api.get("/api/handovers/1")[1]
    path = door_text("https://gw.test", h["receipt"]["id"], h["signature"]).removeprefix(
        "HTTPS://GW.TEST"
    )
    assert path.startswith("/R/")
    page = api.client.get(path)  # public: the seller has no login
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="verified"' in html
    assert re.search(r'id="pickup-time">2026-08-08 \d\d:\d\d[^<]*\(UTC\+08:00\)', html)
    pdf = api.client.get(path + "/receipt.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert api.client.get(path.lower()).status_code == 200

    forged = path[:-4] + ("0000" if not path.endswith("0000") else "1111")
    assert 'id="not-verified"' in api.client.get(forged).get_data(as_text=True)
    assert api.client.get(forged + "/receipt.pdf").status_code == 404
    unsynced = api.client.get("/R/0123456789ABCDEF/0123456789ABCDEF")
    assert unsynced.status_code == 404 and 'id="not-synced"' in unsynced.get_data(as_text=True)


def test_a_handhelds_language_is_chinese_until_an_admin_chooses_english(api):
    assert api.post("/api/devices", {"device_id": "hh-lang"})[0] == 201
    listed = {d["device_id"]: d for d in api.get("/api/devices")[1]["devices"]}
    assert listed["hh-lang"]["language"] == "zh"
    code, device = api.patch("/api/devices/hh-lang", {"language": "en"})
    assert code == 200 and device["language"] == "en"
    assert api.post("/api/devices", {"device_id": "hh-en", "language": "en"})[0] == 201
    listed = {d["device_id"]: d for d in api.get("/api/devices")[1]["devices"]}
    assert listed["hh-lang"]["language"] == listed["hh-en"]["language"] == "en"
    code, err = api.patch("/api/devices/hh-lang", {"language": "fr"})
    assert code == 400 and err["error"]["field"] == "language"
    code, err = api.patch("/api/devices/hh-lang", {"role": "hub"})
    assert code == 400 and err["error"]["field"] == "role"
    assert api.patch("/api/devices/nobody", {"language": "zh"})[0] == 404


def test_handovers_are_listed_newest_first_and_filtered(app, api, world):
    bags = signed_handover(app, world)
    code, body = api.get("/api/handovers")
    assert code == 200 and body["total"] == 1
    assert body["handovers"][0]["bags"] == bags
    assert api.get(f"/api/handovers?seller_id={SELLER[0]}")[1]["total"] == 1
    assert api.get("/api/handovers?driver_id=nobody")[1]["total"] == 0
    code, err = api.get("/api/handovers?per_page=0")
    assert code == 400 and err["error"]["field"] == "per_page"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pickup_date", date(2026, 8, 9)),
        ("seller_id", "1000124"),
        ("seller_name", "别的商店"),
        ("bag_numbers", ["BS0000000001"]),
        ("driver_id", "D043"),
        ("driver_name", "李师傅"),
        ("driver_signature", "00" * 32),
    ],
)
def test_receipt_verification_fails_when_any_field_is_altered(app, api, world, field, value):
    signed_handover(app, world)
    h = api.get("/api/handovers/1")[1]
    url = h["receipt"]["copies"]["audit"].removeprefix("https://gw.test")
    token = url.split("?t=")[1]
    with db.transaction(app) as session:
        row = session.get(ReceiptRow, h["receipt"]["id"])
        assert handovers.verify(session, row, "audit", token)
        setattr(row, field, value)
    with db.sessions(app)() as session:
        assert not handovers.verify(
            session, session.get(ReceiptRow, h["receipt"]["id"]), "audit", token
        )
    assert api.client.get(url).status_code == 404


# --- labels -------------------------------------------------------------------------------


def test_label_pdf_is_ten_by_ten_for_milkrun(api, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    resp = api.raw(f"/api/bags/{bag_no}/label.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert b"/MediaBox [ 0 0 283.4646 283.4646 ]" in resp.data


def test_label_of_a_bag_without_pickup_address_is_a_json_error(api, world, handheld):
    hh = handheld("hh-bare")
    hh.send("bag_open", T0, bag=hh.bag(0))
    code, body = api.get(f"/api/bags/{hh.bag(0)}/label.pdf")
    assert code == 409 and body["error"]["code"] == "NO_PICKUP_ADDRESS"


# --- imports ------------------------------------------------------------------------------


def test_an_import_with_one_bad_row_changes_nothing(app, api, world):
    rows = [
        {"tracking_no": "LZNEW000001", "seller_id": SELLER[0], "status": "rts", "hub": "SZ"},
        {
            "tracking_no": world.parcels[0],
            "seller_id": SELLER[0],
            "status": "cancelled",
            "hub": "SZ",
        },
        {"tracking_no": "LZNEW000003", "seller_id": SELLER[0], "status": "rts", "hub": "XX"},
    ]
    code, body = api.post("/api/parcels", {"parcels": rows})
    assert code == 400
    assert body["error"]["field"] == "parcels[2].hub" and "row 3" in body["error"]["message"]
    assert api.get("/api/parcels/LZNEW000001")[0] == 404
    assert api.get(f"/api/parcels/{world.parcels[0]}")[1]["status"] == "rts"


def test_import_updates_the_platform_state(app, api, world):
    rows = [
        {
            "tracking_no": world.parcels[0],
            "seller_id": SELLER[0],
            "status": "cancelled",
            "hub": "SZ",
            "sea_big_item": True,
        }
    ]
    assert api.post("/api/parcels", {"parcels": rows}) == (200, {"created": 0, "updated": 1})
    with db.sessions(app)() as session:
        p = session.get(Parcel, world.parcels[0])
        assert (p.status, p.sea_big_item) == ("cancelled", True)


# --- setup --------------------------------------------------------------------------------


def test_a_wrong_seller_pair_is_refused(api, world):
    code, body = api.post(
        f"/api/accounts/{world.account_id}/stores",
        {"seller_id": "2000456", "seller_name": "深圳小商店"},
    )
    assert code == 409 and body["error"]["code"] == "STORE_PAIR_MISMATCH"
    assert body["error"]["field"] == "seller_name"


def test_milkrun_has_one_pickup_address(api, world):
    code, body = api.post(
        f"/api/accounts/{world.account_id}/addresses",
        {"kind": "pickup", "service": "milkrun", "warehouse_name": "二号仓", "street": "Y 路"},
    )
    assert code == 409 and body["error"]["code"] == "MILKRUN_ADDRESS_EXISTS"
    code, body = api.post(
        f"/api/accounts/{world.account_id}/addresses",
        {
            "kind": "pickup",
            "service": "paid",
            "warehouse_name": "二号仓",
            "province": "广东省",
            "city": "东莞市",
            "street": "Y 路",
        },
    )
    assert code == 201 and body["service"] == "paid"


def test_devices_register_once_unless_replaced(api):
    code, first = api.post("/api/devices", {"device_id": "hh-9"})
    assert code == 201 and set(first) == {"device_id", "mqtt", "bag_range"}
    assert set(first["mqtt"]) == {"host", "port", "user", "password", "tls"}
    code, body = api.post("/api/devices", {"device_id": "hh-9"})
    assert code == 409 and body["error"]["code"] == "DEVICE_EXISTS"
    code, again = api.post("/api/devices", {"device_id": "hh-9", "replace": True})
    assert code == 201 and again["bag_range"] == first["bag_range"]
    assert again["mqtt"]["password"] != first["mqtt"]["password"]
    code, listing = api.get("/api/devices")
    assert [d["device_id"] for d in listing["devices"]] == ["hh-9"]


def test_devices_tell_records_stored_but_not_yet_applied(api, app):
    api.post("/api/devices", {"device_id": "hh-9"})
    now = datetime.now(UTC)
    with db.transaction(app) as session:
        for seq in (1, 2, 3):
            body = {"s": seq, "b": 1, "t": seq, "w": 0, "q": 0, "k": "bag_open", "bag": "B"}
            session.add(
                Record(device_id="hh-9", seq=seq, boot=1, kind="bag_open", ticks=seq, wall=0,
                       clock_ok=False, body=body, received_at=now, occurred_at=now)
            )  # fmt: skip
    assert api.get("/api/devices")[1]["devices"][0]["unapplied"] == 3
    with db.transaction(app) as session:
        session.get(Device, "hh-9").applied_seq = 2
    device = api.get("/api/devices")[1]["devices"][0]
    assert (device["applied_seq"], device["unapplied"]) == (2, 1)


def test_health_and_openapi_need_no_token(api):
    assert api.client.get("/api/health").get_json() == {"status": "ok"}
    doc = api.client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.") and "/api/bags/{bag_no}/cancel" in doc["paths"]


def test_the_openapi_document_lists_every_route_of_the_api_blueprints(app):
    def shape(path: str) -> str:  # parameter names aside: /api/bags/{} either way
        return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)

    routes = {
        (method.lower(), shape(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in ("api", "receipt_pages")
        and rule.endpoint != "api.not_found"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (method, shape(path))
        for path, operations in DOCUMENT["paths"].items()
        # the admin page's public receipt pages: a copy's, and the door's
        if not path.startswith(("/receipts/", "/r/"))
        for method in operations
    }
    assert len(routes) == 25 and routes == documented


# --- every error path is a 4xx JSON body --------------------------------------------------

ERRORS = [
    ("get", "/api/bags/BSNOPE", None, 404, "BAG_NOT_FOUND"),
    ("get", "/api/bags?page=0", None, 400, "BAD_PARAMETER"),
    ("get", "/api/bags?per_page=1000", None, 400, "BAD_PARAMETER"),
    ("get", "/api/bags?status=lost", None, 400, "BAD_PARAMETER"),
    ("post", "/api/bags/BSNOPE/cancel", None, 404, "BAG_NOT_FOUND"),
    ("post", "/api/bags/{bag}/events", {"event": "pickup_scan", "cause": "x"}, 400, "BAD_FIELD"),
    ("post", "/api/bags/{bag}/events", {"event": "close"}, 400, "BAD_FIELD"),
    ("post", "/api/bags/{bag}/events", [], 400, "BAD_JSON"),
    ("post", "/api/bags/{bag}/cancel", {"reason": 5}, 400, "BAD_FIELD"),
    ("get", "/api/bags/BSNOPE/label.pdf", None, 404, "BAG_NOT_FOUND"),
    ("post", "/api/parcels", None, 400, "BAD_JSON"),
    ("post", "/api/parcels", {"parcels": "x"}, 400, "BAD_FIELD"),
    ("post", "/api/parcels", {"parcels": []}, 400, "BAD_FIELD"),
    ("post", "/api/parcels", {"parcels": [{"tracking_no": "A"}]}, 400, "BAD_FIELD"),
    ("get", "/api/parcels/NOPE", None, 404, "PARCEL_NOT_FOUND"),
    ("post", "/api/hub/receipts", {"parcels": []}, 400, "BAD_FIELD"),
    ("post", "/api/hub/receipts", {"parcels": ["NOPE"]}, 404, "PARCEL_NOT_FOUND"),
    (
        "post",
        "/api/hub/receipts",
        {"parcels": ["LZLOOSE0001"], "received_at": "yesterday"},
        400,
        "BAD_FIELD",
    ),
    (
        "post",
        "/api/hub/receipts",
        {"parcels": ["LZLOOSE0001"], "received_at": "2026-08-09T08:00:00"},
        400,
        "BAD_FIELD",
    ),
    ("get", "/api/handovers/99", None, 404, "HANDOVER_NOT_FOUND"),
    ("get", "/handovers/99/receipt.pdf", None, 404, "HANDOVER_NOT_FOUND"),
    ("post", "/api/devices", {"device_id": "bad id!"}, 400, "BAD_FIELD"),
    ("post", "/api/devices", {"device_id": "ok", "role": "boss"}, 400, "BAD_FIELD"),
    ("post", "/api/devices", {"device_id": "ok", "account_id": 999}, 404, "ACCOUNT_NOT_FOUND"),
    ("post", "/api/devices", {"device_id": "ok", "replace": "yes"}, 400, "BAD_FIELD"),
    ("post", "/api/drivers", {"id": "D1", "name": "x", "pin": "12"}, 400, "BAD_FIELD"),
    ("post", "/api/drivers", {"id": "D042", "name": "x", "pin": "1234"}, 409, "DRIVER_EXISTS"),
    ("post", "/api/drivers", {"name": "x", "pin": "1234"}, 400, "BAD_FIELD"),
    ("post", "/api/accounts", {"name": ""}, 400, "BAD_FIELD"),
    ("post", "/api/accounts", {"name": "Shenzhen Trading"}, 409, "ACCOUNT_EXISTS"),
    ("post", "/api/accounts", {"name": "x", "tz": "Mars/Base"}, 400, "BAD_FIELD"),
    ("post", "/api/stores", {"seller_id": "1"}, 400, "BAD_FIELD"),
    (
        "post",
        "/api/accounts/999/stores",
        {"seller_id": "1", "seller_name": "x"},
        404,
        "ACCOUNT_NOT_FOUND",
    ),
    (
        "post",
        "/api/accounts/{account}/stores",
        {"seller_id": "9", "seller_name": "x"},
        404,
        "STORE_NOT_FOUND",
    ),
    ("post", "/api/accounts/{account}/addresses", {"kind": "home"}, 400, "BAD_FIELD"),
    (
        "post",
        "/api/accounts/{account}/addresses",
        {"kind": "pickup", "warehouse_name": "w", "street": "s", "service": "air"},
        400,
        "BAD_FIELD",
    ),
    (
        "post",
        "/api/accounts/{account}/addresses",
        {"kind": "return", "warehouse_name": "w", "street": "s", "seller_id": "2000456"},
        404,
        "STORE_NOT_LINKED",
    ),
    ("get", "/api/nothing-here", None, 404, "NOT_FOUND"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    ERRORS,
    ids=[f"{e[0]} {e[1]} {e[3]}" for e in ERRORS],
)
def test_every_error_is_4xx_json_naming_the_problem(api, world, method, path, body, status, code):
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", T0, bag=bag_no)
    path = path.format(bag=bag_no, account=world.account_id)
    if method == "get":
        got, payload = api.get(path)
    else:
        resp = api.client.post(
            path,
            data=None if body is None else json.dumps(body),
            headers={**api.headers, "Content-Type": "application/json"},
        )
        got, payload = resp.status_code, resp.get_json(silent=True)
    assert got == status, payload
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]
    if status == 400 and code == "BAD_FIELD":
        assert payload["error"]["field"]


def test_without_the_token_the_api_refuses(api, world):
    resp = api.client.get("/api/bags", headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "UNAUTHORIZED"
    assert TOKEN not in resp.get_data(as_text=True)


def test_nothing_half_written_on_a_refused_cancel(app, api, world):
    bag_no = picked_up_bag(app, world)
    api.post(f"/api/bags/{bag_no}/cancel")
    with db.sessions(app)() as session:
        bag = session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one()
        count = session.scalar(
            select(func.count()).select_from(BagHistory).where(BagHistory.bag_id == bag.id)
        )
    assert count == 4  # submitted, awaiting_bag_number, awaiting_pickup, picked_up
