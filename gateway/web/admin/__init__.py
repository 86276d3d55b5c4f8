"""The admin pages (HTML) behind login: dashboard, bags, handovers, devices, parcel lookup.

The pages also need accounts (gateway.web.auth), the two languages (gateway.web.i18n), the live
stream (gateway.web.live) and receipts (gateway.web.admin.receipts): create_app sets up each.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from gateway import clock, db
from gateway.domain import lifecycle
from gateway.domain.labels import bag_label_pdf
from gateway.domain.online_time import REASONS
from gateway.errors import Refused
from gateway.models import Address, Device
from gateway.services import audit, bag_list, device_config, devices
from gateway.services import handovers as handover_records
from gateway.web import auth, i18n
from gateway.web.admin import bag_actions, domain_text, queries
from gateway.web.auth import login_required

bp = Blueprint("admin", __name__)

# No inline script or style anywhere: a barcode that smuggles markup past escaping still
# cannot run. Forms post only to us; nobody may frame the page (clickjacking).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def init_app(app: Flask) -> None:
    """The security headers on every response, and the pages' time format."""
    app.after_request(_security_headers)
    app.jinja_env.globals["local_time"] = local_time
    app.jinja_env.globals["zone_name"] = queries.zone_name()
    app.jinja_env.globals["config_state"] = devices.config_state
    domain_text.init_app(app)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html" and "api" not in request.blueprints:
        # A page seen while logged in must not come back from the cache after logout.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def local_time(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return at.astimezone(queries.zone()).strftime(fmt) if at else ""


def _now() -> datetime:
    return clock.now()


# --- dashboard -------------------------------------------------------------------------------


@bp.get("/")
@login_required()
def dashboard():
    data = queries.dashboard(db.session(), _now(), i18n.status_label)
    g.open_exceptions = data["exceptions_count"]  # the menu shows the same count: count once
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
    now = _now()
    page = queries.bag_page(dbs, f, now, _before())
    return render_template(
        "bags.html",
        page=page,
        f=f,
        columns=bag_list.PAGE_COLUMNS,
        now=now,
        statuses=lifecycle.STATUSES,
        sellers=queries.sellers(dbs),
    )


@bp.get("/bags.csv")
@login_required()
def bags_csv():
    f = _bag_filter()
    now = _now()
    sessions = db.sessions()

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(bag_list.csv_header())
        with sessions() as dbs:
            for bag in queries.iter_bags(dbs, f, now):
                writer.writerow(bag_list.csv_row(bag, now))
                if out.tell() > 64 * 1024:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="bags.csv"'
    return response


@bp.get("/bags/<bag_no>")
@login_required()
def bag(bag_no: str):
    dbs = db.session()
    found = queries.bag_by_number(dbs, bag_no)
    if found is None:
        return render_template("not_found.html", message="No such bag."), 404
    detail = queries.bag_detail(dbs, found)
    return render_template(
        "bag.html",
        d=detail,
        late=bag_list.is_late(found, _now()),
        bag_events=bag_actions.DISPATCHER_EVENTS.get(found.status, ()),
        event_buttons=bag_actions.EVENT_BUTTONS,
    )


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
        device_id = request.form.get("device_id", "").strip()
        if request.form.get("replace") != "1" and dbs.get(Device, device_id) is not None:
            # Ask first, as the API asks for "replace": true: a new password keeps the
            # handheld offline until it is given the new one.
            page = render_template("devices.html", devices=queries.devices(dbs), confirm=device_id)
            return page, 409
        try:
            device, password = devices.provision(
                dbs, request.form.get("device_id", "").strip(), current_app.config["BAG_RANGE_SIZE"]
            )
        except Refused as err:
            error = err.message
        else:
            audit.record(dbs, auth.current_user(), "provision_device", f"device {device.id}",
                         None, {"bag_range": [device.bag_range_lo, device.bag_range_hi]})  # fmt: skip
            dbs.commit()
            device_config.publish(dbs, [device.id])
            created = {"device_id": device.id, "password": password}
    status = 400 if error else (201 if created else 200)
    return render_template(
        "devices.html", devices=queries.devices(dbs), created=created, error=error
    ), status


@bp.post("/devices/<device_id>/language")
@login_required("admin")
def device_language(device_id: str):
    """An admin chooses the language of a handheld's screens; its config follows (issue 18)."""
    dbs = db.session()
    device = dbs.get(Device, device_id)
    if device is None:
        abort(404)
    before = device.language
    try:
        changed = devices.set_language(device, request.form.get("language"))
    except Refused as err:
        page = render_template("devices.html", devices=queries.devices(dbs), error=err.message)
        return page, 400
    if changed:
        audit.record(dbs, auth.current_user(), "device_language", f"device {device.id}",
                     {"language": before}, {"language": device.language})  # fmt: skip
    dbs.commit()
    if changed:
        device_config.publish(dbs, [device.id])
    return redirect(url_for("admin.device_list"))


# --- handovers -------------------------------------------------------------------------------


@bp.get("/handovers")
@login_required()
def handovers():
    rows, next_before = queries.handover_page(db.session(), _before())
    return render_template("handovers.html", rows=rows, next_before=next_before)


@bp.get("/handovers/<int:handover_id>")
@login_required()
def handover(handover_id: int):
    dbs = db.session()
    found = dbs.get(queries.Handover, handover_id)
    if found is None:
        return render_template("not_found.html", message="No handovers."), 404
    receipt = queries.receipt_for(dbs, handover_id)
    refused = handover_records.refused(dbs, found)
    return render_template(
        "handover.html",
        h=found,
        receipt=receipt,
        bags=handover_records.handed_over(dbs, found),
        refused=refused,
        unknown=handover_records.counted_unknown_bags(refused),
    )
