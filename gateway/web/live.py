"""Live updates for the dashboard: a server-sent event stream of the dashboard's data.

The stream polls a cheap fingerprint of the database (the ends of a few indexes) once a
second and sends the dashboard again when it changes. Polling the database, rather than a
signal from the ingest worker, keeps it right when several gateways share one database.
A stream lasts a few minutes; the browser's EventSource reconnects by itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import Blueprint, Response, current_app

from gateway import clock, db
from gateway.web import i18n
from gateway.web.auth import login_required

bp = Blueprint("events", __name__)

POLL_S = 1.0
KEEPALIVE_S = 15.0  # a comment line, so proxies keep the connection open
STREAM_S = 300.0  # then the browser reconnects (and the login is checked again)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@bp.get("/events/dashboard")
@login_required()
def dashboard_stream():
    from gateway.web.admin import queries

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lang = i18n.current_lang()

    def label(status: str) -> str:
        return i18n.status_label_in(status, lang)

    def stream() -> Iterator[str]:
        last = None
        started = last_sent = time.monotonic()
        yield "retry: 2000\n\n"
        while time.monotonic() - started < STREAM_S:
            with db.sessions(app)() as dbs:
                mark = queries.fingerprint(dbs)
                if mark != last:
                    data = queries.dashboard(dbs, clock.now(), label)
                    last = mark
                    last_sent = time.monotonic()
                    yield _sse("dashboard", data)
            if time.monotonic() - last_sent > KEEPALIVE_S:
                last_sent = time.monotonic()
                yield ": keepalive\n\n"
            time.sleep(POLL_S)

    response = Response(stream(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response
