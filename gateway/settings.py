"""Gateway settings with their defaults, reachable from any session (request or ingest worker).

Every setting may be overridden like the others: instance config.py or BAGSCAN_<NAME>.
"""

from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from gateway import db

DEFAULTS: dict[str, Any] = {
    # What a handheld does with a parcel missing from its cache: its cache is bounded
    # (gateway/device_config.py), so "accept" lets the gateway re-check it afterwards.
    "UNKNOWN_PARCEL": "accept",
    # domain.md: "a long time" before closing a bag is not given; (product choice) 72 h.
    "CLOSE_AFTER_HOURS": 72,
    # Arrival weight tolerance (domain.arrival.Tolerance): the larger allowance applies.
    "ARRIVAL_TOLERANCE_G": 200,
    "ARRIVAL_TOLERANCE_PCT": 2.0,
    # Where the receipts' QR codes point (the verification page of this gateway).
    "PUBLIC_URL": "http://127.0.0.1:5000",
}


def init_app(app: Flask) -> None:
    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    # The ingest worker applies records outside any request: sessions carry the config.
    db.sessions(app).configure(info={"config": app.config})


def of(session: Session) -> Mapping[str, Any]:
    """The app's config as seen from a session (the defaults for a bare session)."""
    return session.info.get("config") or DEFAULTS


def secret(session: Session) -> bytes:
    """The installation secret (SECRET_KEY) that seals driver keys and signs receipt copies."""
    value = of(session).get("SECRET_KEY") or ""
    if not value:
        raise RuntimeError("SECRET_KEY is not set")
    return value.encode()
