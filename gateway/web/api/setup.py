"""Setting up sellers and couriers: accounts, stores, addresses, drivers (gateway.services)."""

from flask import Blueprint, jsonify

from gateway import db, settings
from gateway.errors import Refused
from gateway.models import Account
from gateway.services import accounts, couriers
from gateway.web.api.parsing import body, db_id

bp = Blueprint("setup", __name__)


def _account(account_id: int) -> Account:
    row_id = db_id(account_id)
    account = db.session().get(Account, row_id) if row_id is not None else None
    if account is None:
        raise Refused(404, "ACCOUNT_NOT_FOUND", f"no account {account_id}", "account_id")
    return account


@bp.post("/accounts")
def create_account():
    account = accounts.create_account(db.session(), body())
    db.session().commit()
    return jsonify(id=account.id, name=account.name, tz=account.tz), 201


@bp.post("/stores")
def register_store():
    store = accounts.register_store(db.session(), body())
    db.session().commit()
    return jsonify(seller_id=store.seller_id, seller_name=store.seller_name), 201


@bp.post("/accounts/<int:account_id>/stores")
def link_store(account_id: int):
    session = db.session()
    store = accounts.link_store(session, _account(account_id), body())
    session.commit()
    # The account's devices learn the link as a delta (gateway/ingest/config_feed.py).
    return jsonify(seller_id=store.seller_id, seller_name=store.seller_name, account_id=account_id)


@bp.post("/accounts/<int:account_id>/addresses")
def add_address(account_id: int):
    address = accounts.add_address(db.session(), _account(account_id), body())
    db.session().commit()
    return jsonify(accounts.address_json(address)), 201


@bp.post("/drivers")
def create_driver():
    found = body()
    session = db.session()
    driver = couriers.create(
        session,
        settings.secret(session),
        found.get("id"),
        found.get("name"),
        found.get("badge"),
        found.get("pin"),
        found.get("accounts"),
    )
    session.commit()
    # The handhelds of the driver's route learn it as a delta (gateway/ingest/config_feed.py).
    return jsonify(id=driver.id, name=driver.name, badge=driver.badge), 201
