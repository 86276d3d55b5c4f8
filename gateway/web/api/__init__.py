"""The JSON API under /api (bearer token, BAGSCAN_API_TOKEN): one blueprint per resource.

docs/api.md describes every endpoint; /api/openapi.json serves the OpenAPI document
(gateway/web/openapi.py), and tests/gateway/test_api_contract.py holds the server to it. Every
error is a JSON body {"error": {"code", "message", "field"?}} with a 4xx status: a refusal is
gateway.errors.Refused, answered by the app's one handler; werkzeug's own errors (404, 405
with its Allow header, 413) are answered in the same shape by `http_error`. A request that
fails writes nothing (each handler commits once, at its end).
"""

import hmac

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.errors import Refused
from gateway.web import auth

PUBLIC_ENDPOINTS = {"api.health.health", "api.health.openapi"}
# Outside /api, for a bearer token or a logged-in admin-page user (gateway/web/api/handovers.py).
RECEIPT_PDF = "receipt_pages"


def require_token() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    if request.blueprint == RECEIPT_PDF and auth.current_user() is not None:
        return
    expected = current_app.config["API_TOKEN"]
    if not expected:
        raise Refused(503, "API_DISABLED", "set BAGSCAN_API_TOKEN to enable the JSON API")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(401, "UNAUTHORIZED", "a valid bearer token is required")


def _is_api_request() -> bool:
    """An API request, matched or not: unknown paths under /api answer in JSON too."""
    if "api" in request.blueprints or request.blueprint == RECEIPT_PDF:
        return True
    return request.path == "/api" or request.path.startswith("/api/")


def http_error(err: HTTPException):
    """Werkzeug's own errors (404, 405, 413, ...) in the API's JSON shape; HTML elsewhere.

    create_app registers it for the whole app: a path that matches no route has no blueprint,
    so a blueprint's handler would never see its 404 or 405."""
    if not _is_api_request():
        return err
    code = (err.name or "error").upper().replace(" ", "_")
    body = {"code": code, "message": err.description or code}
    if err.code == 404 and request.url_rule is None:
        body["message"] = f"no API endpoint {request.path}"
    if err.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        body |= {"message": f"the request body is larger than {limit} bytes", "field": "body"}
    response = jsonify(error=body)
    response.status_code = err.code or 500
    # A 405 names what the path allows (RFC 9110 section 15.5.6).
    for name, value in err.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def guard(bp: Blueprint) -> None:
    """What every API blueprint does first: the token check."""
    bp.before_request(require_token)


def blueprint(*resources: Blueprint) -> Blueprint:
    """/api with the given resource blueprints under it (create_app lists them)."""
    api = Blueprint("api", __name__, url_prefix="/api")
    guard(api)
    for resource in resources:
        api.register_blueprint(resource)
    return api
