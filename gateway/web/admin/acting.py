"""What every action form of the admin page shares: the acting user, form fields, the outcome.

An action is a POST behind `login_required(role)` (the role is checked on the server; the page
only hides the buttons), carries the CSRF token (gateway.web.auth checks every form), writes its
audit entry in its own transaction (gateway.services.audit) and answers with a redirect back to
the page, which shows the outcome once (post/redirect/get: a reload never repeats the action).
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from gateway import db
from gateway.errors import Refused, bad_field
from gateway.models import User
from gateway.web import auth


def actor() -> User:
    """The logged-in user; login_required ran first, so there is one."""
    user = auth.current_user()
    if user is None:
        raise RuntimeError("an action view without login_required")
    return user


def text(name: str, limit: int, required: bool = True) -> str:
    value = request.form.get(name, "").strip()
    if (required and not value) or len(value) > limit or not db.storable(value):
        need = f"1-{limit}" if required else f"up to {limit}"
        raise bad_field(name, f"{name} must be text of {need} characters")
    return value


def done(message: str, endpoint: str, **values) -> Response:
    """Commit the action and its audit entry, then show the page again with `message`."""
    db.session().commit()
    flash(message, "ok")
    return redirect(url_for(endpoint, **values))


def refused(err: Refused, endpoint: str, **values) -> Response:
    """Nothing of the action is kept; the page shows why (the refusal's own message)."""
    db.session().rollback()
    flash(f"{err.code}: {err.message}", "error")
    return redirect(url_for(endpoint, **values))
