"""Requests that made the gateway answer 500 (issue 21, finding 6): each is now a 4xx JSON
error naming its field, on SQLite and on PostgreSQL, and nothing is written."""

import json

import pytest
from test_registry import T0

NEST = 100_000  # past Python's recursion limit: json.loads raises RecursionError
BIG = 2**70


def send(api, method: str, path: str, raw: str | bytes | None = None, **kw):
    resp = api.client.open(
        path,
        method=method,
        data=raw,
        headers={**api.headers, "Content-Type": "application/json"},
        **kw,
    )
    return resp


HOSTILE = [
    # (path, raw JSON body, status, code, field)
    ("/api/accounts", "[" * NEST + "]" * NEST, 400, "BAD_JSON", None),
    ("/api/accounts", '{"name": {"a": ' * NEST + "1" + "}" * NEST + "}", 400, "BAD_JSON", None),
    ("/api/accounts", '{"name": "\\ud800"}', 400, "BAD_FIELD", "name"),
    ("/api/accounts", '{"name": "a\\u0000b"}', 400, "BAD_FIELD", "name"),
    ("/api/accounts", '{"name": "x", "tz": []}', 400, "BAD_FIELD", "tz"),
    ("/api/accounts", '{"name": "x", "tz": ""}', 400, "BAD_FIELD", "tz"),
    ("/api/stores", '{"seller_id": "\\udc00", "seller_name": "x"}', 400, "BAD_FIELD", "seller_id"),
    ("/api/drivers", '{"id": "D9", "name": "\\u0000", "pin": "1234"}', 400, "BAD_FIELD", "name"),
    (
        "/api/drivers",
        '{"id": "D9", "name": "x", "pin": "\\u00b2\\u00b3\\u00b9\\u2074"}',
        400,
        "BAD_FIELD",
        "pin",
    ),
    ("/api/devices", f'{{"device_id": "d1", "account_id": {BIG}}}', 400, "BAD_FIELD", "account_id"),
    ("/api/devices", '{"device_id": "d1", "account_id": true}', 400, "BAD_FIELD", "account_id"),
    (
        "/api/devices",
        '{"device_id": "d1", "pickup_address_id": true}',
        400,
        "BAD_FIELD",
        "pickup_address_id",
    ),
    (
        "/api/devices",
        '{"device_id": "d1", "account_id": 2147483647}',
        404,
        "ACCOUNT_NOT_FOUND",
        "account_id",
    ),
    ("/api/devices", '{"device_id": "d1", "replace": []}', 400, "BAD_FIELD", "replace"),
    (
        "/api/parcels",
        '{"parcels": [{"tracking_no": "T1", "seller_id": "1", "status": "rts", "hub": "SZ", "sea_big_item": []}]}',
        400,
        "BAD_FIELD",
        "parcels[0].sea_big_item",
    ),
    (
        "/api/parcels",
        '{"parcels": [{"tracking_no": "T\\ud800", "seller_id": "1", "status": "rts", "hub": "SZ"}]}',
        400,
        "BAD_FIELD",
        "parcels[0].tracking_no",
    ),
    ("/api/hub/receipts", '{"parcels": ["LZ\\u0000"]}', 400, "BAD_FIELD", "parcels[0]"),
    (
        "/api/hub/receipts",
        '{"parcels": ["LZLOOSE0001"], "received_at": "9999-12-31T23:59:59-12:00"}',
        409,
        "TIME_OUT_OF_RANGE",
        "received_at",
    ),
    (
        "/api/hub/receipts",
        '{"parcels": ["LZLOOSE0001"], "received_at": "0001-01-01T00:00:00+14:00"}',
        409,
        "TIME_OUT_OF_RANGE",
        "received_at",
    ),
    ("/api/bags/{bag}/events", '{"event": "close", "cause": "\\u0000"}', 400, "BAD_FIELD", "cause"),
    ("/api/bags/{bag}/cancel", '{"reason": "\\ud800"}', 400, "BAD_FIELD", "reason"),
    ("/api/bags/{bag}/cancel", "[]", 400, "BAD_JSON", None),
    (
        "/api/accounts/{big}/stores",
        '{"seller_id": "1", "seller_name": "x"}',
        404,
        "ACCOUNT_NOT_FOUND",
        "account_id",
    ),
]


@pytest.mark.parametrize(
    ("path", "raw", "status", "code", "field"), HOSTILE, ids=range(len(HOSTILE))
)
def test_a_hostile_body_is_a_4xx_naming_its_field(api, world, path, raw, status, code, field):
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", T0, bag=bag_no)
    resp = send(api, "POST", path.format(bag=bag_no, big=BIG), raw)
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["error"]["code"] == code and body["error"]["message"]
    assert body["error"].get("field") == field


GETS = [
    (f"/api/handovers/{BIG}", 404, "HANDOVER_NOT_FOUND"),
    (f"/handovers/{BIG}/receipt.pdf", 404, "HANDOVER_NOT_FOUND"),
    ("/handovers/x%C2%A9/receipt.pdf", 404, "HANDOVER_NOT_FOUND"),
    ("/api/bags/BS%00", 404, "BAG_NOT_FOUND"),
    ("/api/parcels/LZ%00", 404, "PARCEL_NOT_FOUND"),
    ("/api/bags?page=%C2%B2", 400, "BAD_PARAMETER"),
    ("/api/bags?status=", 400, "BAD_PARAMETER"),
]


@pytest.mark.parametrize(("path", "status", "code"), GETS, ids=[g[0] for g in GETS])
def test_a_hostile_path_or_query_is_a_4xx_json(api, world, path, status, code):
    resp = api.raw(path)
    assert resp.status_code == status and resp.mimetype == "application/json"
    assert resp.get_json()["error"]["code"] == code


@pytest.mark.parametrize("path", ["/api/bags?seller_id=a%00", "/api/handovers?driver_id=%00"])
def test_a_nul_in_a_filter_finds_nothing(api, world, path):
    code, body = api.get(path)
    assert code == 200 and body["total"] == 0


def test_an_undeclared_method_is_405_naming_the_allowed_ones(api):
    resp = api.client.put("/api/accounts", headers=api.headers, json={"name": "x"})
    assert resp.status_code == 405 and resp.mimetype == "application/json"
    assert resp.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert set(resp.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    # An unknown path is still a JSON 404.
    resp = api.client.delete("/api/nothing-here", headers=api.headers)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "NOT_FOUND"


def test_an_oversized_body_is_a_413_json_error(app, api):
    limit = app.config["MAX_CONTENT_LENGTH"]
    rows = [
        {"tracking_no": f"T{i}", "seller_id": "1", "status": "rts", "hub": "SZ"} for i in range(1)
    ]
    raw = json.dumps({"parcels": rows, "pad": "x" * limit})
    resp = send(api, "POST", "/api/parcels", raw)
    assert resp.status_code == 413
    assert resp.get_json()["error"] == {
        "code": "REQUEST_ENTITY_TOO_LARGE",
        "message": f"the request body is larger than {limit} bytes",
        "field": "body",
    }
    assert api.get("/api/parcels/T0")[0] == 404  # nothing written


def test_a_duplicate_tracking_number_in_an_import_is_a_409(api):
    row = {"tracking_no": "T1", "seller_id": "1", "status": "rts", "hub": "SZ"}
    code, body = api.post("/api/parcels", {"parcels": [row, row]})
    assert code == 409 and body["error"]["code"] == "DUPLICATE_PARCEL"
    assert body["error"]["field"] == "parcels[1].tracking_no"
