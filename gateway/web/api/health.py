"""GET /api/health and the OpenAPI document: the two endpoints that need no token."""

from flask import Blueprint, current_app, jsonify

from gateway import health as gateway_health
from gateway.errors import Refused
from gateway.web.openapi import DOCUMENT

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """503 while the database or the MQTT ingest does not work (issues 19, 21): the code is
    the first part's, the message names every part that does not work."""
    problems = gateway_health.problems(current_app)
    if problems:
        raise Refused(503, problems[0].code, "; ".join(p.reason for p in problems))
    return jsonify(status="ok")


@bp.get("/openapi.json")
def openapi():
    return jsonify(DOCUMENT)
