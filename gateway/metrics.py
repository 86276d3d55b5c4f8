"""Prometheus metrics at /metrics (docs/deploy.md, "Metrics"), with prometheus_client.

Counters and histograms are counted where things happen: the ingest's MQTT side (messages
received, receipt -> commit latency), its store process (records received, stored, applied,
quarantined; messages rejected by reason) and whichever HTTP process serves a request. Those
are several processes, so bagscan-gateway runs prometheus_client's multiprocess mode: every
process writes its values to files in PROMETHEUS_MULTIPROC_DIR (gateway/serve.py sets it up),
and /metrics, in any HTTP process, sums the files of all of them. Without that variable (the
test client, a WSGI server of one's own) /metrics shows this process's values.

What is a state rather than an event (connected handhelds, their backlogs, records waiting to
be applied, whether each part works) is read from the database and gateway.health at scrape
time, so it is right whichever process answers and costs the ingest nothing.

/metrics needs its own bearer token, BAGSCAN_METRICS_TOKEN (off without one): a scraper gets
read-only counts and device ids, never the API token that can change data.
"""

import hmac
import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from gateway import clock, db, health
from gateway.models import Device, Record

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

MESSAGES_RECEIVED = Counter(
    "bagscan_ingest_messages_received", "MQTT messages the ingest received from the broker"
)
MESSAGES_REJECTED = Counter(
    "bagscan_ingest_messages_rejected",
    "Device messages refused without storing, by reason",
    ["reason"],
)
RECORDS_RECEIVED = Counter(
    "bagscan_ingest_records_received",
    "Records in valid event messages (a record a handheld sends again counts again)",
)
RECORDS_STORED = Counter(
    "bagscan_ingest_records_stored", "Records stored, not counting those already acknowledged"
)
RECORDS_APPLIED = Counter(
    "bagscan_ingest_records_applied", "Records applied to bags (quarantined ones included)"
)
RECORDS_QUARANTINED = Counter(
    "bagscan_ingest_records_quarantined", "Valid records the database or the registry refused"
)
# Receipt by the gateway -> commit answered, per message. A handheld's message carries no send
# time, so the wait in the broker is not in it; a backlog the broker holds shows in the backlog
# gauges instead.
COMMIT_SECONDS = Histogram(
    "bagscan_ingest_commit_seconds",
    "Seconds from a message's receipt by the gateway to the commit of its records",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HTTP_SECONDS = Histogram(
    "bagscan_http_request_seconds",
    "Seconds to answer an HTTP request, by route (its pattern) and status",
    ["method", "route", "status"],
)

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    expected = current_app.config.get("METRICS_TOKEN") or ""
    if not expected:
        return _text("set BAGSCAN_METRICS_TOKEN to enable /metrics\n", 404)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        response = _text("a valid bearer token is required\n", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if os.environ.get(MULTIPROC_ENV):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    now_registry = CollectorRegistry()
    now_registry.register(_State(current_app._get_current_object()))
    body = generate_latest(counted) + generate_latest(now_registry)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, content_type="text/plain; charset=utf-8")


class _State:
    """The gauges read at scrape time from the database and gateway.health."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        problems = {p.part for p in health.problems(self.app)}
        up = GaugeMetricFamily(
            "bagscan_up", "1 when the part works (gateway.health)", labels=["part"]
        )
        for part in health.PARTS:
            up.add_metric([part], 0.0 if part in problems else 1.0)
        yield up
        if health.DATABASE in problems:
            return
        try:
            yield from self._from_database()
        except SQLAlchemyError:  # went away since the health check: the families above say so
            return

    def _from_database(self):
        with db.sessions(self.app)() as session:
            connected = session.scalar(
                select(func.count()).select_from(Device).where(Device.online.is_(True))
            )
            waiting, oldest = session.execute(
                select(func.count(), func.min(Record.received_at))
                .select_from(Record)
                .join(Device, Device.id == Record.device_id)
                .where(Record.seq > Device.applied_seq)
            ).one()
            devices = session.execute(select(Device.id, Device.status)).all()
        yield GaugeMetricFamily(
            "bagscan_handhelds_connected",
            "Handhelds whose last status said online",
            value=connected or 0,
        )
        yield GaugeMetricFamily(
            "bagscan_apply_lag_records",
            "Records stored but not applied to bags yet",
            value=waiting or 0,
        )
        lag = 0.0
        if oldest is not None:
            received = oldest if oldest.tzinfo else oldest.replace(tzinfo=clock.now().tzinfo)
            lag = max(0.0, (clock.now() - received).total_seconds())
        yield GaugeMetricFamily(
            "bagscan_apply_lag_seconds",
            "Age of the oldest record stored but not applied (0: none waits)",
            value=lag,
        )
        backlog = GaugeMetricFamily(
            "bagscan_handheld_backlog_records",
            "Records a handheld holds unacknowledged, as its last status said",
            labels=["device"],
        )
        for device_id, status in devices:
            if status and isinstance(status.get("backlog"), int):
                backlog.add_metric([device_id], status["backlog"])
        yield backlog


def init_app(app: Flask) -> None:
    app.before_request(_started)
    app.after_request(_answered)


def _started() -> None:
    g.metrics_started = time.perf_counter()


def _answered(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        HTTP_SECONDS.labels(request.method, route, str(response.status_code)).observe(
            time.perf_counter() - started
        )
    return response
