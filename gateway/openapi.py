"""The OpenAPI 3.1 document of the JSON API, served at /api/openapi.json (docs/api.md)."""

from typing import Any

from gateway.domain import lifecycle


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "Bad input; `field` names it"),
    "401": _json(_ref("Error"), "Missing or wrong bearer token"),
    "404": _json(_ref("Error"), "Not found"),
    "409": _json(_ref("Error"), "Refused by a rule (code says which)"),
}
PDF = {"description": "PDF", "content": {"application/pdf": {}}}


def _op(summary: str, ok: dict, body: dict | None = None, params: list | None = None) -> dict:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **ERRORS}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema}


OBJ = {"type": "object"}
STR = {"type": "string"}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "bagscan gateway",
        "version": "1",
        "description": "First-mile bag pickup: bags, parcels, handovers, devices. See docs/api.md.",
    },
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": STR, "message": STR, "field": STR},
                    }
                },
            },
            "BagStatus": {"type": "string", "enum": list(lifecycle.STATUSES)},
            "Bag": {
                "type": "object",
                "properties": {
                    "bag_no": STR,
                    "status": _ref("BagStatus"),
                    "parcels": {"type": "array", "items": STR},
                    "parcel_count": {"type": "integer"},
                    "weight_g": {"type": ["integer", "null"]},
                    "picked_up_at": {"type": ["string", "null"], "format": "date-time"},
                    "driver": {"type": ["object", "null"]},
                    "history": {"type": "array", "items": OBJ},
                    "disagreements": {"type": "array", "items": OBJ},
                },
            },
            "Parcel": {
                "type": "object",
                "properties": {
                    "tracking_no": STR,
                    "seller_id": STR,
                    "status": {"enum": ["pending", "rts", "cancelled", "received"]},
                    "hub": {"enum": ["SZ", "YW", "FM-49", "HK", "KR"]},
                    "sea_big_item": {"type": "boolean"},
                    "bag_no": {"type": ["string", "null"]},
                    "received_at": {"type": ["string", "null"], "format": "date-time"},
                    "online_at": {"type": ["string", "null"], "format": "date-time"},
                    "online_reason": {"type": ["string", "null"]},
                },
            },
        },
    },
    "paths": {
        "/api/health": {"get": {**_op("Liveness and database", _json(OBJ)), "security": []}},
        "/api/openapi.json": {"get": {**_op("This document", _json(OBJ)), "security": []}},
        "/api/bags": {
            "get": _op(
                "Bags, newest first, paginated",
                _json(OBJ),
                params=[
                    _query("status", _ref("BagStatus")),
                    _query("seller_id", STR),
                    _query("page", {"type": "integer", "minimum": 1}),
                    _query("per_page", {"type": "integer", "minimum": 1, "maximum": 200}),
                ],
            )
        },
        "/api/bags/{bag_no}": {"get": _op("One bag", _json(_ref("Bag")), params=[_path("bag_no")])},
        "/api/bags/{bag_no}/cancel": {
            "post": _op(
                "Cancel a bag; 409 CANCEL_AFTER_PICKUP once its pickup scan is recorded",
                _json(_ref("Bag")),
                params=[_path("bag_no")],
            )
        },
        "/api/bags/{bag_no}/events": {
            "post": _op(
                "Apply a manual lifecycle event (not pickup_scan / pickup_refused)",
                _json(_ref("Bag")),
                {
                    "type": "object",
                    "required": ["event", "cause"],
                    "properties": {"event": STR, "cause": STR},
                },
                [_path("bag_no")],
            )
        },
        "/api/bags/{bag_no}/label.pdf": {
            "get": _op(
                "Bag label, 10x10 cm (milkrun) or 10x15 cm (paid)", PDF, params=[_path("bag_no")]
            )
        },
        "/api/parcels": {
            "post": _op(
                "Import parcels from the platform; one bad row refuses all",
                _json(OBJ),
                {
                    "type": "object",
                    "properties": {"parcels": {"type": "array", "items": _ref("Parcel")}},
                },
            )
        },
        "/api/parcels/{tracking_no}": {
            "get": _op(
                "One parcel, its bag and online time",
                _json(_ref("Parcel")),
                params=[_path("tracking_no")],
            )
        },
        "/api/hub/receipts": {
            "post": _op(
                "Parcels received at the hub: received_at and online time",
                _json(OBJ),
                {
                    "type": "object",
                    "required": ["parcels"],
                    "properties": {
                        "parcels": {"type": "array", "items": STR},
                        "received_at": {"type": "string", "format": "date-time"},
                    },
                },
            )
        },
        "/api/handovers": {
            "get": _op(
                "Handovers, newest first (?seller_id=, ?driver_id=, ?page=, ?per_page=)",
                _json(OBJ),
            )
        },
        "/api/handovers/{id}": {
            "get": _op("A handover and its receipt copies", _json(OBJ), params=[_path("id")])
        },
        "/handovers/{id}/receipt.pdf": {
            "get": _op(
                "The handover receipt, three copies on one A4 page", PDF, params=[_path("id")]
            )
        },
        "/receipts/{receipt_id}/{copy}": {
            "get": {
                **_op(
                    "Verify a receipt copy (what its QR code opens; HTML; 404 when not genuine)",
                    {"description": "HTML page", "content": {"text/html": {}}},
                    params=[_path("receipt_id"), _path("copy"), _query("t", STR)],
                ),
                "security": [],
            }
        },
        "/api/devices": {
            "get": _op("Handhelds and their sync state", _json(OBJ)),
            "post": _op(
                "Provision a handheld; 409 DEVICE_EXISTS unless replace is true",
                _json(OBJ, "Created (201)"),
                {
                    "type": "object",
                    "required": ["device_id"],
                    "properties": {
                        "device_id": STR,
                        "replace": {"type": "boolean"},
                        "role": {"enum": ["seller", "hub"]},
                        "account_id": {"type": ["integer", "null"]},
                        "pickup_address_id": {"type": ["integer", "null"]},
                    },
                },
            ),
        },
        "/api/drivers": {
            "post": _op(
                "Create a driver with a PIN",
                _json(OBJ, "Created (201)"),
                {
                    "type": "object",
                    "required": ["id", "name", "pin"],
                    "properties": {"id": STR, "name": STR, "badge": STR, "pin": STR},
                },
            )
        },
        "/api/accounts": {
            "post": _op(
                "Create an account",
                _json(OBJ, "Created (201)"),
                {"type": "object", "required": ["name"], "properties": {"name": STR, "tz": STR}},
            )
        },
        "/api/stores": {
            "post": _op(
                "Register a platform store (seller id and name)",
                _json(OBJ, "Created (201)"),
                {"type": "object", "properties": {"seller_id": STR, "seller_name": STR}},
            )
        },
        "/api/accounts/{account_id}/stores": {
            "post": _op(
                "Link a store under the account; a wrong (id, name) pair is refused",
                _json(OBJ),
                {"type": "object", "properties": {"seller_id": STR, "seller_name": STR}},
                [_path("account_id")],
            )
        },
        "/api/accounts/{account_id}/addresses": {
            "post": _op(
                "Add a pickup address (milkrun|paid) or a seller's return address",
                _json(OBJ, "Created (201)"),
                {
                    "type": "object",
                    "required": ["kind", "warehouse_name", "street"],
                    "properties": {
                        "kind": {"enum": ["pickup", "return"]},
                        "service": {"enum": ["milkrun", "paid"]},
                        "seller_id": STR,
                        "warehouse_name": STR,
                        "contact": STR,
                        "phone": STR,
                        "province": STR,
                        "city": STR,
                        "district": STR,
                        "street": STR,
                    },
                },
                [_path("account_id")],
            )
        },
    },
}
