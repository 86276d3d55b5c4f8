"""The audit log page: who did what on the admin page, when, and the state before and after."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from gateway import db
from gateway.services import audit
from gateway.web.auth import login_required

bp = Blueprint("audit_log", __name__)


@bp.get("/audit")
@login_required("dispatcher")
def log():
    raw = request.args.get("before", "")
    if raw and not raw.isdigit():
        abort(400, description="before must be an entry id")
    rows, next_before = audit.page(db.session(), int(raw) if raw else None)
    return render_template("audit.html", rows=rows, next_before=next_before)
