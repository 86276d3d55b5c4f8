"""Seller setup: accounts, platform stores linked under them, pickup and return addresses.

docs/domain.md, "Seller setup": stores are linked under one account as (seller name, seller id)
and a wrong pair is refused; Milkrun has one approved pickup address, paid pickup may have
several told apart by warehouse name; each seller has exactly one return address.
"""

from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import db
from gateway.domain import coverage, deadlines
from gateway.errors import Refused, bad_field
from gateway.models import Account, Address, Store, utcnow

# The zone names an account may take: the system's tz database (the OpenAPI document lists them).
ZONES = frozenset(available_timezones())


def _text(body: dict, field: str, limit: int, required: bool = True) -> str:
    value = body.get(field, "" if not required else None)
    if value is None:
        value = ""
    if (
        not isinstance(value, str)
        or len(value) > limit
        or (required and not value.strip())
        or not db.storable(value)
    ):
        need = f"1-{limit}" if required else f"0-{limit}"
        raise bad_field(field, f"{field} must be text of {need} characters")
    return value.strip()


def create_account(session: Session, body: dict) -> Account:
    name = _text(body, "name", 100)
    tz = body.get("tz")
    if tz is None:
        tz = deadlines.DEFAULT_TZ
    elif not isinstance(tz, str) or tz not in ZONES:
        raise bad_field("tz", "tz must be an IANA zone name, e.g. Asia/Shanghai")
    if session.scalars(select(Account.id).where(Account.name == name)).first() is not None:
        raise Refused(409, "ACCOUNT_EXISTS", f"an account named {name!r} exists", "name")
    account = Account(name=name, tz=tz)
    session.add(account)
    session.flush()
    return account


def register_store(session: Session, body: dict) -> Store:
    """The platform's store record (seller id and its name): created, or renamed."""
    seller_id = _text(body, "seller_id", 32)
    seller_name = _text(body, "seller_name", 100)
    store = session.get(Store, seller_id)
    if store is None:
        store = Store(seller_id=seller_id, seller_name=seller_name)
        session.add(store)
    store.seller_name = seller_name
    return store


def link_store(session: Session, account: Account, body: dict) -> Store:
    """Link a store under the account by its (seller id, seller name) pair."""
    seller_id = _text(body, "seller_id", 32)
    seller_name = _text(body, "seller_name", 100)
    store = session.get(Store, seller_id)
    if store is None:
        raise Refused(404, "STORE_NOT_FOUND", f"no store with seller id {seller_id}", "seller_id")
    if store.seller_name != seller_name:
        # The manual: a wrong (seller name, seller id) pair makes bagging fail; refuse it here.
        raise Refused(
            409,
            "STORE_PAIR_MISMATCH",
            f"seller id {seller_id} does not belong to a store named {seller_name!r}",
            "seller_name",
        )
    if store.account_id is not None and store.account_id != account.id:
        raise Refused(
            409,
            "STORE_LINKED_ELSEWHERE",
            f"store {seller_id} is linked to another account",
            "seller_id",
        )
    store.account_id = account.id
    store.linked_at = utcnow()
    return store


def add_address(session: Session, account: Account, body: dict) -> Address:
    """A pickup address (service milkrun|paid), or the return address of one linked seller."""
    kind = body.get("kind")
    if kind not in ("pickup", "return"):
        raise bad_field("kind", "kind must be pickup or return")
    fields = {
        "warehouse_name": _text(body, "warehouse_name", 100),
        "contact": _text(body, "contact", 100, required=False),
        "phone": _text(body, "phone", 32, required=False),
        "province": _text(body, "province", 32, required=False),
        "city": _text(body, "city", 32, required=False),
        "district": _text(body, "district", 32, required=False),
        "street": _text(body, "street", 500),
    }
    store = None
    service = None
    window = None
    if kind == "pickup":
        service = body.get("service")
        if service not in (deadlines.MILKRUN, deadlines.PAID):
            raise bad_field("service", "service must be milkrun or paid")
        if (
            service == deadlines.MILKRUN
            and session.scalars(
                select(Address.id).where(
                    Address.account_id == account.id,
                    Address.kind == "pickup",
                    Address.service == deadlines.MILKRUN,
                )
            ).first()
        ):
            raise Refused(
                409, "MILKRUN_ADDRESS_EXISTS", "Milkrun uses one approved pickup address", "service"
            )
        window = _pickup_window(body, service)
        _check_coverage(body, service, fields)
    else:
        seller_id = _text(body, "seller_id", 32)
        store = session.get(Store, seller_id)
        if store is None or store.account_id != account.id:
            raise Refused(
                404,
                "STORE_NOT_LINKED",
                f"store {seller_id} is not linked to this account",
                "seller_id",
            )
    if session.scalars(
        select(Address.id).where(
            Address.account_id == account.id,
            Address.kind == kind,
            Address.warehouse_name == fields["warehouse_name"],
        )
    ).first():
        raise Refused(
            409, "ADDRESS_EXISTS", "warehouse names tell addresses apart: taken", "warehouse_name"
        )
    address = Address(
        account_id=account.id,
        kind=kind,
        service=service,
        pickup_window=str(window) if window else None,
        **fields,
    )
    session.add(address)
    session.flush()
    if store is not None:
        store.return_address_id = address.id  # exactly one per seller: the new one replaces
    return address


def _pickup_window(body: dict, service: str) -> deadlines.Window | None:
    """Milkrun's pickup window from the seller's agreement: required, "HH:MM-HH:MM" inside
    Milkrun's service hours (Mon-Sun 08:00-19:00). Paid pickup has none (its cut-off rules)."""
    raw = body.get("pickup_window")
    if service != deadlines.MILKRUN:
        if raw is not None:
            raise bad_field("pickup_window", "only a Milkrun address has a pickup window")
        return None
    if not isinstance(raw, str):
        raise bad_field(
            "pickup_window",
            "a Milkrun address needs the pickup window agreed with the seller, HH:MM-HH:MM",
        )
    try:
        window = deadlines.Window.parse(raw)
    except ValueError as err:
        raise bad_field("pickup_window", str(err)) from None
    hours = deadlines.SERVICES[deadlines.MILKRUN]
    if not window.within(deadlines.MILKRUN):
        raise Refused(
            409,
            coverage.OUTSIDE_SERVICE_HOURS,
            f"Milkrun picks up Mon-Sun {hours.opens:%H:%M}-{hours.closes:%H:%M}: the agreed "
            f"window {window} must lie within these hours and end after it starts",
            "pickup_window",
        )
    return window


def _check_coverage(body: dict, service: str, fields: dict) -> None:
    """The manual's coverage tables, and for Milkrun its order minimum: Refused naming the rule."""
    orders = body.get("orders_per_day")
    if service == deadlines.MILKRUN and (
        isinstance(orders, bool) or not isinstance(orders, int | float) or orders < 0
    ):
        raise bad_field(
            "orders_per_day",
            "a Milkrun address needs the seller's average orders a day over the last 30 days",
        )
    place = coverage.Address(fields["province"], fields["city"], fields["district"])
    refusal = coverage.pickup_refusal(service, place, orders)
    if refusal is not None:
        raise Refused(409, refusal.code, refusal.message, refusal.field)


def address_json(a: Address) -> dict:
    return {
        "id": a.id,
        "account_id": a.account_id,
        "kind": a.kind,
        "service": a.service,
        "warehouse_name": a.warehouse_name,
        "contact": a.contact,
        "phone": a.phone,
        "address": a.one_line,
        "pickup_window": a.pickup_window,
    }
