"""Reading an API request: its JSON body, query arguments, ids, times and pages (Refused if bad).

What the database cannot store never reaches it: an id past 31 bits (SQL INTEGER) or `true`
is no id (db_id), text with NUL or an unpaired surrogate is refused where a field is read
(gateway.db.storable) and matches nothing where it is looked up (`equals`).
"""

import json
from datetime import UTC, datetime, timedelta

from flask import request
from sqlalchemy import ColumnElement, Select, false, func, select

from gateway import clock, db
from gateway.errors import Refused, bad_field

PER_PAGE_MAX = 200
PAGE_MAX = 10**6
ID_MAX = 2**31 - 1  # row ids are SQL INTEGER: a larger one names nothing
# A time the request gives (a hub receipt) must lie in this window around the gateway's clock.
TIME_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
TIME_AHEAD_MAX = timedelta(days=1)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def body(optional: bool = False) -> dict:
    """The request's JSON object; with `optional`, {} when the request has no body."""
    data = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH (gateway.web.api)
    if optional and not data:
        return {}
    if not request.is_json:
        raise Refused(400, "BAD_JSON", "the body must be JSON (Content-Type: application/json)")
    try:
        found = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
        found = None
    if not isinstance(found, dict):
        raise Refused(400, "BAD_JSON", "the body must be a JSON object")
    return found


def equals(column, value: str) -> ColumnElement[bool]:
    """A filter on a text column; text no row can hold (NUL) matches nothing."""
    return column == value if db.storable(value) else false()


def db_id(value: object) -> int | None:
    """`value` as a row id (1..2^31-1), None for anything else (`true` is not the id 1)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema: 7.0 is an integer
    if type(value) is int and 1 <= value <= ID_MAX:
        return value
    return None


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    # isascii: "²".isdigit() holds, yet int("²") fails.
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise Refused(400, "BAD_PARAMETER", f"{name} must be an integer {lo}..{hi}", name)
    return int(raw)


def time_field(found: dict, name: str) -> datetime:
    """An ISO 8601 time with offset from the body (now when absent or null), within
    TIME_EARLIEST .. now + TIME_AHEAD_MAX: 409 TIME_OUT_OF_RANGE otherwise."""
    raw = found.get(name)
    now = clock.now()
    if raw is None:
        return now
    try:
        at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise bad_field(name, f"{name} must be an ISO 8601 time with offset")
    try:
        at = at.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted past the calendar's end
        at = None
    if at is None or not TIME_EARLIEST <= at <= now + TIME_AHEAD_MAX:
        raise Refused(
            409,
            "TIME_OUT_OF_RANGE",
            f"{name} must lie between {TIME_EARLIEST.date()} and a day after the gateway's clock",
            name,
        )
    return at


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def paging() -> tuple[int, int]:
    """?page= and ?per_page= (read before the filters, so their errors come first)."""
    return int_arg("page", 1, 1, PAGE_MAX), int_arg("per_page", 50, 1, PER_PAGE_MAX)


def one_page(query: Select, order_by, pages: tuple[int, int]) -> tuple[list, dict]:
    """The page's rows, newest first by `order_by`, and the page fields of the answer."""
    page, per_page = pages
    session = db.session()
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(order_by).limit(per_page).offset((page - 1) * per_page))
    return list(rows), {"page": page, "per_page": per_page, "total": total}
