"""The exceptions queue page: every open exception with what to do, and its resolve action
(gateway.services.exceptions holds what counts as one)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, g, render_template, request

from gateway import db
from gateway.errors import Refused
from gateway.services import exceptions
from gateway.web import auth, i18n
from gateway.web.admin import acting, queries
from gateway.web.auth import login_required

bp = Blueprint("exception_queue", __name__)


def open_count() -> str:
    """The navigation's count, read once per page (templates call it through `open_exceptions`)."""
    if "open_exceptions" not in g:
        now = datetime.now(UTC)
        g.open_exceptions = (
            exceptions.count_label(exceptions.count(db.session(), now, queries.today(now)))
            if auth.current_user()
            else ""
        )
    return g.open_exceptions


@bp.get("/exceptions")
@login_required()
def queue():
    dbs = db.session()
    now = datetime.now(UTC)
    rows = exceptions.queue(dbs, now, queries.today(now))
    return render_template(
        "exceptions.html", rows=rows, resolved=exceptions.resolutions(dbs), kinds=exceptions.KINDS
    )


@bp.post("/exceptions/resolve")
@login_required("dispatcher")
def resolve():
    now = datetime.now(UTC)
    try:
        exceptions.resolve(
            db.session(),
            acting.actor(),
            request.form.get("kind", ""),
            request.form.get("ref", "")[:120],
            request.form.get("why", ""),
            now,
            queries.today(now),
        )
    except Refused as err:
        return acting.refused(err, "exception_queue.queue")
    return acting.done(i18n.gettext("Exception resolved."), "exception_queue.queue")


def init_app(app) -> None:
    app.jinja_env.globals["open_exceptions"] = open_count
