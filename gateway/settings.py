"""Gateway settings with their defaults, reachable from any session (request or ingest worker).

Every setting may be overridden like the others: instance config.py or BAGSCAN_<NAME>.
"""

from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from gateway import clock, db
from protocol import config_schema, rules

DEFAULTS: dict[str, Any] = {
    # What a handheld does with a parcel missing from its cache: its cache is bounded
    # (gateway/services/device_config.py), so "accept" lets the gateway re-check it afterwards.
    "UNKNOWN_PARCEL": "accept",
    # docs/domain.md: "a long time" before closing a bag is not given; (product choice) 72 h.
    "CLOSE_AFTER_HOURS": 72,
    # Arrival weight tolerance (domain.arrival.Tolerance): the larger allowance applies.
    "ARRIVAL_TOLERANCE_G": 200,
    "ARRIVAL_TOLERANCE_PCT": 2.0,
    # Where the receipts' QR codes point (the verification page of this gateway). Empty: the
    # address the request for the receipt came to, i.e. where this gateway is really served
    # (issue 17); set it when phones reach the gateway by another name than the office does.
    "PUBLIC_URL": "",
    # The auto-close (services.bags.close_stale) runs inside bagscan-gateway this often.
    "CLOSE_EVERY_MINUTES": 10,
    # FAQ 10: for now (暂时) only the Shenzhen and Yiwu channels may be bagged; the handhelds
    # get this list in their config (docs/domain.md, "Baggable hubs").
    "BAGGABLE_HUBS": list(rules.BAGGABLE_HUBS),
    # Seconds added to the gateway's clock, for demos and tests (gateway/clock.py).
    "CLOCK_OFFSET": 0,
    # With MQTT_SHARE (several instances): "partition" splits the devices among the live
    # instances, each taking its own devices' events (gateway/ingest/partition.py); "share"
    # leaves the choice to the broker's shared subscription, e.g. EMQX's hash_clientid
    # (docs/deploy.md).
    "MQTT_DISPATCH": "partition",
}


def init_app(app: Flask) -> None:
    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    hubs = app.config["BAGGABLE_HUBS"]
    if not isinstance(hubs, list | tuple) or not set(hubs) <= set(config_schema.HUBS):
        raise ValueError(f"BAGGABLE_HUBS must list hubs of {config_schema.HUBS}, not {hubs!r}")
    clock.init_app(app)
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
