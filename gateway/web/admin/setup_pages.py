"""Set-up pages for admins: sellers (accounts, stores, addresses), couriers and users.

The rules are the services' (gateway.services.accounts, couriers; gateway.web.auth for users):
these views check the role, read the form and write the audit entry. Handhelds are provisioned
on the devices page.
"""

from __future__ import annotations

from flask import Blueprint, flash, render_template, request
from sqlalchemy import select

from gateway import db, settings
from gateway.domain import coverage
from gateway.errors import Refused, bad_field
from gateway.models import Account, Address, Driver, Store, User
from gateway.services import accounts, audit, couriers, device_config
from gateway.web import auth, i18n
from gateway.web.admin import acting
from gateway.web.auth import login_required

bp = Blueprint("setup_pages", __name__)

ADDRESS_FIELDS = ("warehouse_name", "contact", "phone", "province", "city", "district", "street")


def _account() -> Account:
    raw = request.form.get("account_id", "")
    account = db.session().get(Account, int(raw)) if raw.isdigit() else None
    if account is None:
        raise Refused(404, "ACCOUNT_NOT_FOUND", f"no account {raw!r}", "account_id")
    return account


# --- sellers ---------------------------------------------------------------------------------


@bp.get("/setup/sellers")
@login_required("admin")
def sellers():
    dbs = db.session()
    return render_template(
        "setup_sellers.html",
        accounts=list(dbs.scalars(select(Account).order_by(Account.name).limit(500))),
        stores=list(dbs.scalars(select(Store).order_by(Store.seller_id).limit(500))),
        addresses=list(dbs.scalars(select(Address).order_by(Address.id.desc()).limit(500))),
        milkrun_orders=coverage.MIN_DAILY_ORDERS_MAINLAND,
        milkrun_orders_hk=coverage.MIN_DAILY_ORDERS_HONG_KONG,
        window_days=coverage.WINDOW_DAYS,
    )


@bp.post("/setup/accounts")
@login_required("admin")
def add_account():
    form = {"name": request.form.get("name", ""), "tz": request.form.get("tz") or None}
    try:
        account = accounts.create_account(db.session(), form)
    except Refused as err:
        return acting.refused(err, "setup_pages.sellers")
    audit.record(db.session(), acting.actor(), "add_account", f"account {account.name}", None,
                 {"id": account.id, "name": account.name, "tz": account.tz})  # fmt: skip
    return acting.done(i18n.gettext("Saved."), "setup_pages.sellers")


@bp.post("/setup/stores")
@login_required("admin")
def add_store():
    """Register a store (seller id and name) and, when an account is chosen, link it there."""
    dbs = db.session()
    form = {k: request.form.get(k, "") for k in ("seller_id", "seller_name")}
    try:
        known = dbs.get(Store, form["seller_id"].strip())
        before = None if known is None else {"seller_name": known.seller_name,
                                             "account_id": known.account_id}  # fmt: skip
        store = accounts.register_store(dbs, form)
        if request.form.get("account_id"):
            dbs.flush()
            accounts.link_store(dbs, _account(), form)
    except Refused as err:
        return acting.refused(err, "setup_pages.sellers")
    audit.record(dbs, acting.actor(), "add_store", f"store {store.seller_id}", before,
                 {"seller_name": store.seller_name, "account_id": store.account_id})  # fmt: skip
    response = acting.done(i18n.gettext("Saved."), "setup_pages.sellers")
    device_config.publish(dbs)  # the account's handhelds now take this store's parcels
    return response


@bp.post("/setup/addresses")
@login_required("admin")
def add_address():
    """A pickup or return address; the page then says whether Milkrun and paid pickup cover it
    (docs/domain.md "Milkrun eligibility", "Paid pickup")."""
    form = {k: request.form.get(k, "") for k in ADDRESS_FIELDS}
    form.update(kind=request.form.get("kind"), service=request.form.get("service"),
                seller_id=request.form.get("seller_id", ""))  # fmt: skip
    try:
        address = accounts.add_address(db.session(), _account(), form)
    except Refused as err:
        return acting.refused(err, "setup_pages.sellers")
    audit.record(db.session(), acting.actor(), "add_address", f"address {address.id}", None,
                 accounts.address_json(address))  # fmt: skip
    yes, no = i18n.gettext("yes"), i18n.gettext("no")
    flash(
        i18n.gettext("Milkrun covers this address: {milkrun}; paid pickup: {paid}.").format(
            milkrun=yes if coverage.milkrun_covers(address) else no,
            paid=yes if coverage.paid_covers(address) else no,
        ),
        "ok",
    )
    return acting.done(i18n.gettext("Saved."), "setup_pages.sellers")


# --- couriers --------------------------------------------------------------------------------


@bp.get("/setup/couriers")
@login_required("admin")
def couriers_page():
    drivers = list(db.session().scalars(select(Driver).order_by(Driver.id).limit(1000)))
    return render_template("setup_couriers.html", drivers=drivers)


@bp.post("/setup/couriers")
@login_required("admin")
def add_courier():
    dbs = db.session()
    f = request.form
    try:
        driver = couriers.create(dbs, settings.secret(dbs), f.get("id", "").strip(),
                                 f.get("name", ""), f.get("badge", ""), f.get("pin", ""))  # fmt: skip
    except Refused as err:
        return acting.refused(err, "setup_pages.couriers_page")
    audit.record(
        dbs,
        acting.actor(),
        "add_courier",
        f"driver {driver.id}",
        None,
        {"id": driver.id, "name": driver.name, "badge": driver.badge},
    )  # the PIN never
    response = acting.done(i18n.gettext("Saved."), "setup_pages.couriers_page")
    device_config.publish(dbs)  # every handheld learns the new driver
    return response


# --- users -----------------------------------------------------------------------------------


@bp.get("/users")
@login_required("admin")
def users():
    rows = list(db.session().scalars(select(User).order_by(User.username).limit(1000)))
    return render_template("users.html", users=rows, roles=auth.ROLES)


@bp.post("/users")
@login_required("admin")
def add_user():
    dbs = db.session()
    username = request.form.get("username", "").strip()
    role = request.form.get("role", "")
    try:
        if dbs.scalars(select(User.id).where(User.username == username)).first() is not None:
            raise Refused(409, "USER_EXISTS", f"user {username!r} exists", "username")
        try:
            auth.ensure_user(dbs, username, request.form.get("password", ""), role)
        except auth.UserError as err:
            raise bad_field("username", str(err)) from None
    except Refused as err:
        return acting.refused(err, "setup_pages.users")
    audit.record(dbs, acting.actor(), "add_user", f"user {username}", None, {"role": role})
    return acting.done(i18n.gettext("Saved."), "setup_pages.users")


@bp.post("/users/<int:user_id>/role")
@login_required("admin")
def set_role(user_id: int):
    dbs = db.session()
    user = dbs.get(User, user_id)
    role = request.form.get("role", "")
    try:
        if user is None:
            raise Refused(404, "USER_NOT_FOUND", f"no user {user_id}", "user_id")
        if role not in auth.ROLES:
            raise bad_field("role", f"role must be one of {', '.join(auth.ROLES)}")
        if user.id == acting.actor().id:
            # An admin who demotes themself may leave nobody able to undo it.
            raise Refused(409, "OWN_ROLE", "you cannot change your own role", "role")
    except Refused as err:
        return acting.refused(err, "setup_pages.users")
    before = {"role": user.role}
    user.role = role
    auth.end_sessions(dbs, user.id)  # the new role starts with a new login
    audit.record(dbs, acting.actor(), "set_role", f"user {user.username}", before, {"role": role})
    return acting.done(i18n.gettext("Saved."), "setup_pages.users")
