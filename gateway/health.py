"""What keeps the gateway from doing its work now: the database away, or the MQTT ingest not
taking device messages (gateway/ingest/health.py). /api/health, the admin pages' banner,
/metrics and bagscan-gateway's log watch all ask here, so they never disagree.

The reasons are public (/api/health needs no token): they name the part, not its address;
the log gets the driver's own words.
"""

from dataclasses import dataclass

from flask import Flask, render_template, request
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from gateway import db, errors
from gateway.ingest import health as ingest

DATABASE = "database"
MQTT_INGEST = "mqtt_ingest"
PARTS = (DATABASE, MQTT_INGEST)
CODES = {DATABASE: "DATABASE_DOWN", MQTT_INGEST: "INGEST_DOWN"}


@dataclass(frozen=True)
class Problem:
    part: str  # DATABASE or MQTT_INGEST
    reason: str  # for anyone: /api/health, the banner
    detail: str  # for the log

    @property
    def code(self) -> str:
        return CODES[self.part]


def problems(app: Flask) -> list[Problem]:
    """The parts that do not work now, the database first."""
    found = []
    try:
        with db.sessions(app)() as session:
            session.execute(select(1))
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        found.append(Problem(DATABASE, "the database does not answer", detail))
    reason = ingest.problem()  # issue 21: not "ok" while device messages are not taken
    if reason:
        found.append(Problem(MQTT_INGEST, reason, reason))
    return found


def init_app(app: Flask) -> None:
    app.context_processor(lambda: {"health_problems": lambda: problems(app)})
    app.register_error_handler(OperationalError, _database_away)


def _database_away(_exc: OperationalError):
    """A request that needed the database while it is away: 503 with the reason, as JSON
    under /api, else a page that needs nothing from the database (the admin pages' own
    layout asks it who is logged in)."""
    if request.path == "/api" or request.path.startswith("/api/"):
        return errors.as_json(errors.Refused(503, CODES[DATABASE], "the database does not answer"))
    problem = Problem(DATABASE, "the database does not answer", "")
    return render_template("unavailable.html", problems=[problem]), 503
