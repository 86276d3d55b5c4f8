"""Refused: the one exception for a request the gateway turns down, and its JSON answer.

Services, the API and the admin pages raise it (or a subclass); create_app registers
`as_json` once, which answers {"error": {"code", "message", "field"?}} with the status.
"""

from flask import Response, jsonify


class Refused(Exception):
    """A refused request: HTTP status, error code (docs/api.md), message, and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def bad_field(field: str, message: str) -> Refused:
    """The common case: one field of the request is malformed (400 BAD_FIELD)."""
    return Refused(400, "BAD_FIELD", message, field)


def as_json(err: Refused) -> tuple[Response, int]:
    body: dict[str, str] = {"code": err.code, "message": err.message}
    if err.field:
        body["field"] = err.field
    return jsonify(error=body), err.status
