"""The admin pages (HTML) behind login: dashboard, bags, handovers, devices, parcel lookup.

Registering this blueprint also sets up what the pages need: accounts (gateway.auth), the two
languages (gateway.i18n), the live stream (gateway.events) and the security headers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    make_response,
    render_template,
    request,
    stream_with_context,
)

from gateway import auth, db, device_config, devices, events, i18n
from gateway.admin import queries
from gateway.auth import login_required
from gateway.domain import lifecycle
from gateway.domain.labels import bag_label_pdf
from gateway.domain.online_time import REASONS
from gateway.models import Address

bp = Blueprint("admin", __name__)

# No inline script or style anywhere: a barcode that smuggles markup past escaping still
# cannot run. Forms post only to us; nobody may frame the page (clickjacking).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@bp.record_once
def _set_up(state) -> None:
    app: Flask = state.app
    auth.init_app(app)
    i18n.init_app(app)
    events.init_app(app)
    app.after_request(_security_headers)
    app.jinja_env.globals["local_time"] = local_time


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html" and request.blueprint != "api":
        # A page seen while logged in must not come back from the cache after logout.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def local_time(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return at.astimezone(queries.zone()).strftime(fmt) if at else ""


def _now() -> datetime:
    return datetime.now(UTC)


# --- dashboard -------------------------------------------------------------------------------


@bp.get("/")
@login_required()
def dashboard():
    data = queries.dashboard(db.session(), _now(), i18n.status_label)
    return render_template("dashboard.html", d=data)


# --- bags ------------------------------------------------------------------------------------


def _bag_filter() -> queries.BagFilter:
    args = request.args
    day = None
    if args.get("date"):
        try:
            day = date.fromisoformat(args["date"])
        except ValueError:
            abort(400, description="date must be YYYY-MM-DD")
    status = args.get("status", "")
    if status and status not in lifecycle.STATUSES:
        abort(400, description="unknown status")
    return queries.BagFilter(
        status=status,
        seller=args.get("seller", "").strip()[:32],
        day=day,
        late=args.get("late") == "1",
        q=args.get("q", "").strip()[:64],
    )


def _before() -> int | None:
    raw = request.args.get("before", "")
    if not raw:
        return None
    if not raw.isdigit():
        abort(400, description="before must be a bag id")
    return int(raw)


@bp.get("/bags")
@login_required()
def bags():
    f = _bag_filter()
    dbs = db.session()
    page = queries.bag_page(dbs, f, _now(), _before())
    return render_template(
        "bags.html",
        page=page,
        f=f,
        statuses=lifecycle.STATUSES,
        sellers=queries.sellers(dbs),
    )


# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


@bp.get("/bags.csv")
@login_required()
def bags_csv():
    f = _bag_filter()
    now = _now()
    sessions = db.sessions()

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["bag_no", "status", "seller_id", "parcels", "weight_g", "device_id",
             "closed_at", "pickup_due_at", "picked_up_at", "late"]
        )  # fmt: skip
        with sessions() as dbs:
            for bag in queries.iter_bags(dbs, f, now):
                writer.writerow(
                    [csv_cell(v) for v in (
                        bag.bag_no, bag.status, bag.seller_id, bag.parcel_count, bag.weight_g,
                        bag.device_id, _iso(bag.closed_at), _iso(bag.pickup_due_at),
                        _iso(bag.picked_up_at), "1" if queries.is_late(bag, now) else "0",
                    )]
                )  # fmt: skip
                if out.tell() > 64 * 1024:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="bags.csv"'
    return response


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at else ""


@bp.get("/bags/<bag_no>")
@login_required()
def bag(bag_no: str):
    dbs = db.session()
    found = queries.bag_by_number(dbs, bag_no)
    if found is None:
        return render_template("not_found.html", message="No such bag."), 404
    detail = queries.bag_detail(dbs, found)
    return render_template("bag.html", d=detail, late=queries.is_late(found, _now()))


@bp.get("/bags/<bag_no>/label.pdf")
@login_required()
def bag_label(bag_no: str):
    dbs = db.session()
    found = queries.bag_by_number(dbs, bag_no)
    if found is None:
        abort(404)
    address = dbs.get(Address, found.pickup_address_id) if found.pickup_address_id else None
    try:
        pdf = bag_label_pdf(
            found.bag_no,
            found.service or "paid",
            found.seller_id or "",
            address.one_line if address else "",
        )
    except ValueError as err:
        abort(422, description=str(err))
    response = make_response(pdf)
    response.mimetype = "application/pdf"
    response.headers["Content-Disposition"] = f'inline; filename="bag-{found.id}.pdf"'
    return response


# --- parcels ---------------------------------------------------------------------------------


@bp.get("/parcels")
@login_required()
def parcels():
    trk = request.args.get("trk", "").strip()[:64]
    info = queries.parcel_lookup(db.session(), trk) if trk else None
    reason = ""
    if info and info.parcel and info.parcel.online_reason:
        code = info.parcel.online_reason
        if i18n.current_lang() == "zh":
            reason = i18n.REASONS_ZH.get(code, code)
        else:
            reason = REASONS.get(code, code)
    status = 404 if trk and info is None else 200
    return render_template("parcels.html", trk=trk, info=info, reason=reason), status


# --- devices ---------------------------------------------------------------------------------


@bp.route("/devices", methods=["GET", "POST"])
@login_required()
def device_list():
    dbs = db.session()
    created = error = None
    if request.method == "POST":
        if not auth.has_role(auth.current_user(), "admin"):
            abort(403)
        try:
            device, password = devices.provision(
                dbs, request.form.get("device_id", "").strip(), current_app.config["BAG_RANGE_SIZE"]
            )
        except devices.ProvisionError as err:
            error = str(err)
        else:
            dbs.commit()
            device_config.publish(dbs, [device.id])
            created = {"device_id": device.id, "password": password}
    status = 400 if error else (201 if created else 200)
    return render_template(
        "devices.html", devices=queries.devices(dbs), created=created, error=error
    ), status


# --- handovers -------------------------------------------------------------------------------


@bp.get("/handovers")
@login_required()
def handovers():
    rows, next_before = queries.handover_page(db.session(), _before())
    return render_template("handovers.html", rows=rows, next_before=next_before)


@bp.get("/handovers/<int:handover_id>")
@login_required()
def handover(handover_id: int):
    from gateway.admin import receipts

    dbs = db.session()
    found = dbs.get(queries.Handover, handover_id)
    if found is None:
        return render_template("not_found.html", message="No handovers."), 404
    receipt = queries.receipt_for(dbs, handover_id)
    bag_list = receipts.bags_of(dbs, found)
    return render_template("handover.html", h=found, receipt=receipt, bags=bag_list)


from gateway.admin import receipts as _receipts  # noqa: E402,F401  (registers its routes)
