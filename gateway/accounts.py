"""Seller setup: accounts, platform stores linked under them, pickup and return addresses.

domain.md, "Seller setup": stores are linked under one account as (seller name, seller id)
and a wrong pair is refused; Milkrun has one approved pickup address, paid pickup may have
several told apart by warehouse name; each seller has exactly one return address.
"""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.domain import deadlines
from gateway.models import Account, Address, Store, utcnow


class SetupError(ValueError):
    def __init__(self, status: int, code: str, field: str, message: str):
        super().__init__(message)
        self.status, self.code, self.field, self.message = status, code, field, message


def _text(body: dict, field: str, limit: int, required: bool = True) -> str:
    value = body.get(field, "" if not required else None)
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        need = f"1-{limit}" if required else f"0-{limit}"
        raise SetupError(400, "BAD_FIELD", field, f"{field} must be text of {need} characters")
    return value.strip()


def create_account(session: Session, body: dict) -> Account:
    name = _text(body, "name", 100)
    tz = body.get("tz") or deadlines.DEFAULT_TZ
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise SetupError(400, "BAD_FIELD", "tz", "tz must be an IANA zone name") from None
    if session.scalars(select(Account.id).where(Account.name == name)).first() is not None:
        raise SetupError(409, "ACCOUNT_EXISTS", "name", f"an account named {name!r} exists")
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
        raise SetupError(
            404, "STORE_NOT_FOUND", "seller_id", f"no store with seller id {seller_id}"
        )
    if store.seller_name != seller_name:
        # The manual: a wrong (seller name, seller id) pair makes bagging fail; refuse it here.
        raise SetupError(
            409,
            "STORE_PAIR_MISMATCH",
            "seller_name",
            f"seller id {seller_id} does not belong to a store named {seller_name!r}",
        )
    if store.account_id is not None and store.account_id != account.id:
        raise SetupError(
            409,
            "STORE_LINKED_ELSEWHERE",
            "seller_id",
            f"store {seller_id} is linked to another account",
        )
    store.account_id = account.id
    store.linked_at = utcnow()
    return store


def add_address(session: Session, account: Account, body: dict) -> Address:
    """A pickup address (service milkrun|paid), or the return address of one linked seller."""
    kind = body.get("kind")
    if kind not in ("pickup", "return"):
        raise SetupError(400, "BAD_FIELD", "kind", "kind must be pickup or return")
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
    if kind == "pickup":
        service = body.get("service")
        if service not in (deadlines.MILKRUN, deadlines.PAID):
            raise SetupError(400, "BAD_FIELD", "service", "service must be milkrun or paid")
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
            raise SetupError(
                409, "MILKRUN_ADDRESS_EXISTS", "service", "Milkrun uses one approved pickup address"
            )
    else:
        seller_id = _text(body, "seller_id", 32)
        store = session.get(Store, seller_id)
        if store is None or store.account_id != account.id:
            raise SetupError(
                404,
                "STORE_NOT_LINKED",
                "seller_id",
                f"store {seller_id} is not linked to this account",
            )
    if session.scalars(
        select(Address.id).where(
            Address.account_id == account.id,
            Address.kind == kind,
            Address.warehouse_name == fields["warehouse_name"],
        )
    ).first():
        raise SetupError(
            409, "ADDRESS_EXISTS", "warehouse_name", "warehouse names tell addresses apart: taken"
        )
    address = Address(account_id=account.id, kind=kind, service=service, **fields)
    session.add(address)
    session.flush()
    if store is not None:
        store.return_address_id = address.id  # exactly one per seller: the new one replaces
    return address


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
    }
