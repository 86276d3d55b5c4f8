"""The OpenAPI 3.1 document of the JSON API, served at /api/openapi.json (docs/api.md).

It says exactly what the server takes: a request it describes is served (or answered 404 for
an id that names nothing, 409 for a rule), one it does not is refused with 400; the links say
which answer an id comes from. tests/gateway/test_api_contract.py holds the server to it.
"""

from typing import Any

from gateway.domain import bag_rules, lifecycle
from gateway.services import accounts, bags, couriers, parcels
from gateway.web.api.parsing import ID_MAX, PAGE_MAX, PER_PAGE_MAX
from protocol import config_schema

JSON = "application/json"
BINARY = "application/octet-stream"
DEVICE_ID = "^[A-Za-z0-9_-]{1,32}$"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK", links: dict | None = None) -> dict:
    out: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if links:
        out["links"] = links
    return out


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


ERRORS = {
    "400": _error("Bad input; `field` names it"),
    "401": _error("Missing or wrong bearer token"),
    "404": _error("Not found (an id in the path or the body names nothing)"),
    "409": _error("Refused by a rule (code says which)"),
    "503": _error(
        "API_DISABLED: no BAGSCAN_API_TOKEN is set; DATABASE_DOWN: the database does not answer"
    ),
}
TOO_LARGE = {"413": _error("The body is larger than MAX_CONTENT_LENGTH (field `body`)")}
PDF = {"description": "PDF", "content": {"application/pdf": {"schema": {}}}}

# Text the database can store: no NUL (the server refuses it, naming the field).
NO_NUL = r"^[^\x00]*$"
# What Python's str.strip() removes, spelled out: `\s` means less in ECMA regexes (no \x1c-\x1f).
SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# ... and, for a required field, not blank either (the server strips it).
NOT_BLANK = rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$"
# protocol.wire.text_ok after stripping: no control characters, not blank.
WIRE_TEXT = rf"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f{SPACE}][^\x00-\x1f\x7f]*$"


def _text(max_len: int, required: bool = False, nullable: bool = False) -> dict:
    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string"}
    schema["maxLength"] = max_len
    if required:
        schema |= {"minLength": 1, "pattern": NOT_BLANK}
    else:
        schema["pattern"] = NO_NUL
    return schema


def _op(
    op_id: str,
    summary: str,
    ok: dict,
    body: dict | None = None,
    params: list | None = None,
    status: str = "200",
    body_required: bool = True,
) -> dict:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary}
    op["responses"] = {status: ok, **ERRORS, **(TOO_LARGE if body is not None else {})}
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {JSON: {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _object(properties: dict, required: tuple = ()) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _link(op_id: str, parameters: dict | None = None, body: dict | None = None) -> dict:
    link: dict[str, Any] = {"operationId": op_id}
    if parameters:
        link["parameters"] = parameters
    if body:
        link["requestBody"] = body
    return link


OBJ = {"type": "object"}
STR = {"type": "string"}
INT = {"type": "integer"}
ROW_ID = {"type": "integer", "minimum": 1, "maximum": ID_MAX}
NULLABLE_ROW_ID = {"type": ["integer", "null"], "minimum": 1, "maximum": ID_MAX}
TIME = {"type": "string", "format": "date-time"}
MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
MAYBE_STR = {"type": ["string", "null"]}
MAYBE_INT = {"type": ["integer", "null"]}
PAGING = [
    _query("page", {"type": "integer", "minimum": 1, "maximum": PAGE_MAX}),
    _query("per_page", {"type": "integer", "minimum": 1, "maximum": PER_PAGE_MAX}),
]
PAGE_FIELDS = {"page": INT, "per_page": INT, "total": INT}

# Where the ids come from: the bag list gives bag numbers, the handover list handover ids.
BAG_LINKS = {
    name: _link(op, {"bag_no": "$response.body#/bags/0/bag_no"})
    for name, op in (
        ("OneBag", "getBag"),
        ("CancelBag", "cancelBag"),
        ("BagEvent", "bagEvent"),
        ("BagLabel", "bagLabel"),
    )
}
HANDOVER_LINKS = {
    "OneHandover": _link("getHandover", {"id": "$response.body#/handovers/0/id"}),
    "ReceiptPdf": _link("receiptPdf", {"id": "$response.body#/handovers/0/id"}),
}
ACCOUNT_LINKS = {
    "LinkStore": _link("linkStore", {"account_id": "$response.body#/id"}),
    "AddAddress": _link("addAddress", {"account_id": "$response.body#/id"}),
}
STORE_LINKS = {
    "OneStoreLinked": _link(
        "linkStore",
        body={
            "seller_id": "$response.body#/seller_id",
            "seller_name": "$response.body#/seller_name",
        },
    )
}
PARCEL_LINKS = {
    "ImportedParcel": _link("getParcel", {"tracking_no": "$request.body#/parcels/0/tracking_no"}),
    "ReceiveImported": _link(
        "hubReceipts", body={"parcels": ["$request.body#/parcels/0/tracking_no"]}
    ),
}
ADDRESS_LINKS = {
    "DeviceAtAddress": _link(
        "createDevice",
        body={
            "account_id": "$response.body#/account_id",
            "pickup_address_id": "$response.body#/id",
        },
    )
}

# A Milkrun pickup window, "HH:MM-HH:MM" (domain.deadlines.Window).
PICKUP_WINDOW = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
ADDRESS_TEXT = {
    "warehouse_name": _text(100, required=True),
    "street": _text(500, required=True),
    "contact": _text(100, nullable=True),
    "phone": _text(32, nullable=True),
    "province": _text(32, nullable=True),
    "city": _text(32, nullable=True),
    "district": _text(32, nullable=True),
}
# sea_big_item as the platform's CSV and JSON give it (gateway.services.parcels._TRUE/_FALSE;
# strings are read without case or surrounding spaces).
SEA_BIG_ITEM = {
    "enum": [True, False, None, 0, 1, "1", "0", "true", "false", "yes", "no", "y", "n", ""]
}

HEALTH = _op(
    "health", "Whether the database and the MQTT ingest work", _json(_object({"status": STR}))
)
HEALTH["responses"]["503"] = _error(
    "DATABASE_DOWN or INGEST_DOWN (the first part that does not work; the message names all)"
)

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
            "Release": _object(
                {"version": STR, "sha256": STR, "size": INT, "uploaded_at": TIME},
                ("version", "sha256", "size", "uploaded_at"),
            ),
            "DeviceUpdate": _object(
                {
                    "device_id": STR,
                    "running": MAYBE_STR,
                    "online": {"type": "boolean"},
                    "version": MAYBE_STR,
                    "state": {"type": ["string", "null"]},
                    "fetched": INT,
                    "size": INT,
                    "updated_at": MAYBE_TIME,
                },
                ("device_id", "running", "online", "version", "state", "fetched", "size"),
            ),
            "Error": _object(
                {
                    "error": _object(
                        {"code": STR, "message": STR, "field": STR}, required=("code", "message")
                    )
                },
                required=("error",),
            ),
            "BagStatus": {"type": "string", "enum": list(lifecycle.STATUSES)},
            "BagSummary": _object(
                {
                    "bag_no": STR,
                    "status": _ref("BagStatus"),
                    "seller_id": MAYBE_STR,
                    "account_id": MAYBE_INT,
                    "service": MAYBE_STR,
                    "parcel_count": INT,
                    "weight_g": MAYBE_INT,
                    "device_id": MAYBE_STR,
                    "opened_at": MAYBE_TIME,
                    "closed_at": MAYBE_TIME,
                    "pickup_due_at": MAYBE_TIME,
                    "picked_up_at": MAYBE_TIME,
                    "late": {"type": ["boolean", "null"]},
                    "disagreement_count": INT,
                },
                required=("bag_no", "status"),
            ),
            "Bag": {
                "allOf": [
                    _ref("BagSummary"),
                    _object(
                        {
                            "parcels": {"type": "array", "items": STR},
                            "driver": {"type": ["object", "null"]},
                            "handover_id": MAYBE_INT,
                            "history": {"type": "array", "items": OBJ},
                            "disagreements": {"type": "array", "items": OBJ},
                            "allowed_events": {"type": "array", "items": STR},
                        },
                        required=("parcels", "history", "disagreements", "allowed_events"),
                    ),
                ]
            },
            "Parcel": _object(
                {
                    "tracking_no": STR,
                    "seller_id": STR,
                    "status": {"enum": list(bag_rules.PARCEL_STATUSES)},
                    "hub": {"enum": list(bag_rules.HUBS)},
                    "sea_big_item": {"type": "boolean"},
                    "bag_no": MAYBE_STR,
                    "received_at": MAYBE_TIME,
                    "online_at": MAYBE_TIME,
                    "online_reason": MAYBE_STR,
                    "in_transit_overdue": {"type": "boolean"},
                },
                required=("tracking_no", "seller_id", "status", "hub"),
            ),
            "ParcelImport": _object(
                {
                    "tracking_no": {"type": "string", "maxLength": 64, "pattern": WIRE_TEXT},
                    "seller_id": {"type": "string", "maxLength": 32, "pattern": WIRE_TEXT},
                    "status": {"enum": list(bag_rules.PARCEL_STATUSES)},
                    "hub": {"enum": list(bag_rules.HUBS)},
                    "sea_big_item": SEA_BIG_ITEM,
                },
                required=("tracking_no", "seller_id", "status", "hub"),
            ),
            "Handover": _object(
                {
                    "id": INT,
                    "device_id": STR,
                    "driver_id": STR,
                    "seller_id": STR,
                    "pickup_date": STR,
                    "bags": {"type": "array", "items": STR},
                    "signature_ok": {"type": "boolean"},
                    "at": TIME,
                    "receipt": {"type": ["object", "null"]},
                },
                required=("id", "bags", "signature_ok", "receipt"),
            ),
            "Store": _object({"seller_id": STR, "seller_name": STR}, ("seller_id", "seller_name")),
            "StoreLink": _object(
                {"seller_id": STR, "seller_name": STR, "account_id": INT},
                ("seller_id", "seller_name", "account_id"),
            ),
            "Address": _object(
                {
                    "id": INT,
                    "account_id": INT,
                    "kind": {"enum": ["pickup", "return"]},
                    "service": {"enum": ["milkrun", "paid", None]},
                    "warehouse_name": STR,
                    "contact": STR,
                    "phone": STR,
                    "address": STR,
                    "pickup_window": MAYBE_STR,
                },
                ("id", "account_id", "kind"),
            ),
        },
    },
    "paths": {
        "/api/health": {
            "get": {
                **HEALTH,
                "security": [],
            }
        },
        "/api/openapi.json": {
            "get": {**_op("openapi", "This document", _json(OBJ)), "security": []}
        },
        "/api/bags": {
            "get": _op(
                "listBags",
                "Bags, newest first, paginated",
                _json(
                    _object(
                        {"bags": {"type": "array", "items": _ref("BagSummary")}, **PAGE_FIELDS},
                        ("bags", "page", "per_page", "total"),
                    ),
                    links=BAG_LINKS,
                ),
                params=[_query("status", _ref("BagStatus")), _query("seller_id", STR), *PAGING],
            )
        },
        "/api/bags/{bag_no}": {
            "get": _op("getBag", "One bag", _json(_ref("Bag")), params=[_path("bag_no")])
        },
        "/api/bags/{bag_no}/cancel": {
            "post": _op(
                "cancelBag",
                "Cancel a bag; 409 CANCEL_AFTER_PICKUP once its pickup scan is recorded",
                _json(_ref("Bag")),
                _object({"reason": {"type": "string", "maxLength": 200, "pattern": NO_NUL}}),
                [_path("bag_no")],
                body_required=False,
            )
        },
        "/api/bags/{bag_no}/events": {
            "post": _op(
                "bagEvent",
                "Apply a manual lifecycle event (not pickup_scan / pickup_refused)",
                _json(_ref("Bag")),
                _object(
                    {"event": {"enum": list(bags.MANUAL_EVENTS)}, "cause": _text(200, True)},
                    ("event", "cause"),
                ),
                [_path("bag_no")],
            )
        },
        "/api/bags/{bag_no}/label.pdf": {
            "get": _op(
                "bagLabel",
                "Bag label, 10x10 cm (milkrun) or 10x15 cm (paid)",
                PDF,
                params=[_path("bag_no")],
            )
        },
        "/api/parcels": {
            "post": _op(
                "importParcels",
                "Import parcels from the platform; one bad row refuses all (409"
                " DUPLICATE_PARCEL for a tracking number given twice)",
                _json(
                    _object({"created": INT, "updated": INT}, ("created", "updated")),
                    links=PARCEL_LINKS,
                ),
                _object(
                    {
                        "parcels": {
                            "type": "array",
                            "items": _ref("ParcelImport"),
                            "minItems": 1,
                            "maxItems": parcels.MAX_IMPORT,
                        }
                    },
                    ("parcels",),
                ),
            )
        },
        "/api/parcels/{tracking_no}": {
            "get": _op(
                "getParcel",
                "One parcel, its bag and online time",
                _json(_ref("Parcel")),
                params=[_path("tracking_no")],
            )
        },
        "/api/hub/receipts": {
            "post": _op(
                "hubReceipts",
                "Parcels received at the hub: received_at and online time (409"
                " TIME_OUT_OF_RANGE for a time before 2000 or over a day ahead)",
                _json(_object({"parcels": {"type": "array", "items": OBJ}}, ("parcels",))),
                _object(
                    {
                        "parcels": {
                            "type": "array",
                            "items": {"type": "string", "pattern": NO_NUL},
                            "minItems": 1,
                            "maxItems": parcels.MAX_IMPORT,
                            "uniqueItems": True,
                        },
                        "received_at": MAYBE_TIME,
                    },
                    ("parcels",),
                ),
            )
        },
        "/api/handovers": {
            "get": _op(
                "listHandovers",
                "Handovers, newest first, paginated",
                _json(
                    _object(
                        {"handovers": {"type": "array", "items": _ref("Handover")}, **PAGE_FIELDS},
                        ("handovers", "page", "per_page", "total"),
                    ),
                    links=HANDOVER_LINKS,
                ),
                params=[_query("seller_id", STR), _query("driver_id", STR), *PAGING],
            )
        },
        "/api/handovers/{id}": {
            "get": _op(
                "getHandover",
                "A handover and its receipt copies",
                _json(_ref("Handover")),
                params=[_path("id", ROW_ID)],
            )
        },
        "/handovers/{id}/receipt.pdf": {
            "get": _op(
                "receiptPdf",
                "The handover receipt, three copies on one A4 page",
                PDF,
                params=[_path("id", ROW_ID)],
            )
        },
        "/receipts/{receipt_id}/{copy}": {
            "get": {
                "operationId": "verifyReceipt",
                "summary": "Verify a receipt copy (what its QR code opens; an HTML page)",
                "security": [],
                "parameters": [_path("receipt_id"), _path("copy"), _query("t", STR)],
                "responses": {
                    "200": {"description": "The copy, genuine", "content": {"text/html": {}}},
                    "404": {"description": "Not genuine", "content": {"text/html": {}}},
                },
            }
        },
        "/r/{receipt_id}/{signature}": {
            "get": {
                "operationId": "doorReceipt",
                "summary": (
                    "The receipt the handheld's QR code opens at the seller's door (also as "
                    "/R/..., the code's uppercase; an HTML page; protocol/receipt.py)"
                ),
                "security": [],
                "parameters": [_path("receipt_id"), _path("signature")],
                "responses": {
                    "200": {"description": "The receipt, genuine", "content": {"text/html": {}}},
                    "404": {
                        "description": "Not synced yet, or not genuine",
                        "content": {"text/html": {}},
                    },
                },
            }
        },
        "/r/{receipt_id}/{signature}/receipt.pdf": {
            "get": {
                "operationId": "doorReceiptPdf",
                "summary": "That receipt's PDF",
                "security": [],
                "parameters": [_path("receipt_id"), _path("signature")],
                "responses": {"200": PDF, "404": {"description": "Not genuine"}},
            }
        },
        "/api/devices": {
            "get": _op(
                "listDevices",
                "Handhelds and their sync state",
                _json(_object({"devices": {"type": "array", "items": OBJ}}, ("devices",))),
            ),
            "post": _op(
                "createDevice",
                "Provision a handheld; 409 DEVICE_EXISTS unless replace is true",
                _json(
                    _object(
                        {"device_id": STR, "mqtt": OBJ, "bag_range": {"type": "array"}},
                        ("device_id", "mqtt", "bag_range"),
                    ),
                    "Created",
                ),
                _object(
                    {
                        "device_id": {"type": "string", "pattern": DEVICE_ID},
                        "replace": {"type": "boolean"},
                        "role": {"enum": ["seller", "hub"]},
                        "language": {"enum": list(config_schema.LANGUAGES)},
                        "account_id": NULLABLE_ROW_ID,
                        "pickup_address_id": NULLABLE_ROW_ID,
                    },
                    ("device_id",),
                ),
                status="201",
            ),
        },
        "/api/devices/{device_id}": {
            "patch": _op(
                "updateDevice",
                "Choose the language of a handheld's screens; its config follows",
                _json(OBJ),
                # Nothing else may change here: other fields are refused, naming the field.
                _object({"language": {"enum": list(config_schema.LANGUAGES)}})
                | {"additionalProperties": False},
                [_path("device_id")],
            ),
        },
        "/api/releases": {
            "get": _op(
                "listReleases",
                "Firmware releases, oldest first",
                _json(_object({"releases": {"type": "array", "items": _ref("Release")}})),
            ),
            "post": {
                **_op(
                    "uploadRelease",
                    "Upload a release file (tools/release build); 409 NOT_A_RELEASE, RELEASE_EXISTS",
                    _json(_ref("Release"), "Created"),
                    status="201",
                ),
                "requestBody": {
                    "required": True,
                    "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}},
                },
            },
        },
        "/api/releases/{version}/rollout": {
            "post": _op(
                "rolloutRelease",
                "Offer a release to some handhelds, an account's or all",
                _json(
                    _object(
                        {"version": STR, "devices": {"type": "array", "items": STR}},
                        ("version", "devices"),
                    )
                ),
                {
                    "oneOf": [
                        _object(
                            {
                                "devices": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"type": "string", "pattern": DEVICE_ID},
                                }
                            },
                            ("devices",),
                        )
                        | {"additionalProperties": False},
                        _object({"account_id": ROW_ID}, ("account_id",))
                        | {"additionalProperties": False},
                        _object({"all": {"const": True}}, ("all",))
                        | {"additionalProperties": False},
                    ]
                },
                [_path("version", {"type": "string", "pattern": "^[0-9A-Za-z.+-]{1,32}$"})],
            ),
        },
        "/api/releases/updates": {
            "get": _op(
                "listUpdates",
                "Each handheld: the version it runs and its update's state",
                _json(_object({"updates": {"type": "array", "items": _ref("DeviceUpdate")}})),
            ),
        },
        "/api/drivers": {
            "post": _op(
                "createDriver",
                "Create a driver with a PIN",
                _json(_object({"id": STR, "name": STR, "badge": STR}, ("id", "name")), "Created"),
                _object(
                    {
                        # Printable ASCII without '|' (gateway.services.couriers.create).
                        "id": {"type": "string", "pattern": r"^[\x20-\x7b\x7d\x7e]{1,32}$"},
                        "name": _text(couriers.MAX_NAME, required=True),
                        "badge": _text(32, nullable=True),
                        "pin": {"type": "string", "pattern": "^[0-9]{4,12}$"},
                        # The driver's route (gateway.services.couriers.set_route).
                        "accounts": {"type": ["array", "null"], "items": ROW_ID},
                    },
                    ("id", "name", "pin"),
                ),
                status="201",
            )
        },
        "/api/accounts": {
            "post": _op(
                "createAccount",
                "Create an account (tz: an IANA zone, Asia/Shanghai when absent or null)",
                _json(
                    _object({"id": INT, "name": STR, "tz": STR}, ("id", "name", "tz")),
                    "Created",
                    ACCOUNT_LINKS,
                ),
                _object(
                    {
                        "name": _text(100, required=True),
                        "tz": {"enum": [None, *sorted(accounts.ZONES)]},
                    },
                    ("name",),
                ),
                status="201",
            )
        },
        "/api/stores": {
            "post": _op(
                "registerStore",
                "Register a platform store (seller id and name)",
                _json(_ref("Store"), "Created", STORE_LINKS),
                _object(
                    {"seller_id": _text(32, True), "seller_name": _text(100, True)},
                    ("seller_id", "seller_name"),
                ),
                status="201",
            )
        },
        "/api/accounts/{account_id}/stores": {
            "post": _op(
                "linkStore",
                "Link a store under the account; a wrong (id, name) pair is refused",
                _json(_ref("StoreLink")),
                _object(
                    {"seller_id": _text(32, True), "seller_name": _text(100, True)},
                    ("seller_id", "seller_name"),
                ),
                [_path("account_id", ROW_ID)],
            )
        },
        "/api/accounts/{account_id}/addresses": {
            "post": _op(
                "addAddress",
                "Add a pickup address (milkrun|paid) or a seller's return address",
                _json(_ref("Address"), "Created", ADDRESS_LINKS),
                {
                    "oneOf": [
                        # Milkrun: the agreement's pickup window and the application's
                        # orders a day (gateway/services/accounts.py checks coverage too).
                        _object(
                            {
                                "kind": {"const": "pickup"},
                                "service": {"const": "milkrun"},
                                "pickup_window": {"type": "string", "pattern": PICKUP_WINDOW},
                                "orders_per_day": {"type": "number", "minimum": 0},
                                **ADDRESS_TEXT,
                            },
                            (
                                "kind",
                                "service",
                                "warehouse_name",
                                "street",
                                "pickup_window",
                                "orders_per_day",
                            ),
                        ),
                        _object(
                            {
                                "kind": {"const": "pickup"},
                                "service": {"const": "paid"},
                                "pickup_window": False,  # Milkrun's only
                                **ADDRESS_TEXT,
                            },
                            ("kind", "service", "warehouse_name", "street"),
                        ),
                        _object(
                            {
                                "kind": {"const": "return"},
                                "seller_id": _text(32, True),
                                **ADDRESS_TEXT,
                            },
                            ("kind", "seller_id", "warehouse_name", "street"),
                        ),
                    ]
                },
                [_path("account_id", ROW_ID)],
                status="201",
            )
        },
    },
}
