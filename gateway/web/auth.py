"""Admin-page accounts: login and logout, server-side sessions, roles, CSRF and login throttling.

A login creates a row in admin_sessions and puts only its random token in the (signed,
HttpOnly, SameSite=Lax) Flask session cookie; every request looks the row up, so logout or a
password change ends a session on the server and an old cookie is refused. The CSRF token of a
form is an HMAC of that token (or of a pre-login nonce), so it needs no storage of its own.

First admin: `flask --app gateway create-user admin --role admin`, or set
BAGSCAN_ADMIN_PASSWORD: the gateway then creates the user `admin` with that password on its
first request if no such user exists (an existing password is never overwritten).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import click
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.cli import with_appcontext
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gateway import db
from gateway.models import AdminSession, LoginFailure, User

ROLES = ("viewer", "dispatcher", "admin")  # each role may do what the ones before it may
SESSION_LIFETIME = timedelta(hours=12)  # one shift, with room
# The 11th wrong password for a name within an hour is refused (issue 6).
FAILURES_PER_USER = 10
# Guessing across many names from one address: a wider limit, as a warehouse shares one NAT.
FAILURES_PER_ADDRESS = 50
FAILURE_WINDOW = timedelta(hours=1)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Compared against when the user does not exist, so a wrong name costs as much time as a wrong
# password and response times do not tell which names exist.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))

bp = Blueprint("auth", __name__)


class UserError(ValueError):
    pass


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- accounts ----------------------------------------------------------------------------


def ensure_user(
    dbs: Session, username: str, password: str, role: str, *, reset: bool = False
) -> tuple[User, bool]:
    """Create `username` with `password` and `role` unless it exists; returns (user, created).

    With reset=True an existing user gets the new password and role and loses its sessions.
    The caller commits.
    """
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if not username or len(username) > 64 or not username.isprintable():
        raise UserError("username must be 1-64 printable characters")
    if len(password) < 8:
        raise UserError("password must have at least 8 characters")
    user = dbs.scalars(select(User).where(User.username == username)).one_or_none()
    if user is not None and not reset:
        return user, False
    created = user is None
    if created:
        user = User(username=username, password_hash="", role=role)
        dbs.add(user)
    user.password_hash = generate_password_hash(password)
    user.role = role
    dbs.flush()
    if not created:
        end_sessions(dbs, user.id)
    return user, created


def end_sessions(dbs: Session, user_id: int) -> None:
    dbs.execute(delete(AdminSession).where(AdminSession.user_id == user_id))


def _remote_addr() -> str:
    return (request.remote_addr or "?")[:64]


def throttled(dbs: Session, username: str, addr: str, now: datetime) -> bool:
    """True when this name or this address has used up its wrong passwords for the hour."""
    since = now - FAILURE_WINDOW
    by_user = dbs.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.username == username[:64], LoginFailure.at > since)
    )
    if by_user >= FAILURES_PER_USER:
        return True
    by_addr = dbs.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.remote_addr == addr, LoginFailure.at > since)
    )
    return by_addr >= FAILURES_PER_ADDRESS


def authenticate(dbs: Session, username: str, password: str, addr: str, now: datetime):
    """The user, or None for a wrong name or password; "throttled" when no attempt is allowed.

    Every failure is recorded; the caller commits.
    """
    if throttled(dbs, username, addr, now):
        return "throttled"
    user = dbs.scalars(select(User).where(User.username == username)).one_or_none()
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok:
        dbs.add(LoginFailure(username=username[:64], remote_addr=addr, at=now))
        return None
    dbs.execute(delete(LoginFailure).where(LoginFailure.username == username))
    return user


def start_session(dbs: Session, user: User, now: datetime) -> None:
    """A fresh session: whatever the browser had before (a fixed cookie too) is dropped."""
    old = session.get("sid")
    if old:
        dbs.execute(delete(AdminSession).where(AdminSession.id == _token_id(old)))
    # Sweep expired rows now and then, so the table only holds live sessions.
    dbs.execute(delete(AdminSession).where(AdminSession.expires_at < now))
    session.clear()
    token = secrets.token_urlsafe(32)
    dbs.add(
        AdminSession(
            id=_token_id(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
            remote_addr=_remote_addr(),
        )
    )
    session["sid"] = token
    session.permanent = True


def current_user() -> User | None:
    """The logged-in user of this request, looked up once."""
    if "user" not in g:
        g.user = None
        token = session.get("sid")
        if token:
            row = (
                db.session()
                .execute(
                    select(User)
                    .join(AdminSession, AdminSession.user_id == User.id)
                    .where(
                        AdminSession.id == _token_id(token),
                        AdminSession.expires_at > datetime.now(UTC),
                    )
                )
                .scalar_one_or_none()
            )
            g.user = row
    return g.user


def has_role(user: User | None, role: str) -> bool:
    return user is not None and user.role in ROLES and ROLES.index(user.role) >= ROLES.index(role)


def login_required(role: str = "viewer") -> Callable:
    """Pages for logged-in users of at least `role`; others go to the login page (or 403)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            user = current_user()
            if user is None:
                # A page goes to the login form; the live stream just ends (EventSource
                # retries, and the page it belongs to will go to the login form itself).
                stream = "text/event-stream" in request.headers.get("Accept", "")
                if request.method == "GET" and not stream:
                    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
                abort(401)
            if not has_role(user, role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


# --- CSRF ----------------------------------------------------------------------------------


def csrf_token() -> str:
    """The token forms must send back: bound to the session, or to a pre-login nonce."""
    basis = session.get("sid")
    if not basis:
        basis = session.get("pre")
        if not basis:
            basis = session["pre"] = secrets.token_urlsafe(16)
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"csrf|" + basis.encode(), hashlib.sha256).hexdigest()


def _check_csrf() -> None:
    if request.method not in UNSAFE_METHODS or "api" in request.blueprints:
        return  # the JSON API authenticates with a bearer token, which browsers never send
    if request.routing_exception is not None:
        return  # no view runs: the 404 or 405 (with its Allow header) answers, not this
    if not (session.get("sid") or session.get("pre")):
        abort(400, description="CSRF token missing or stale: reload the page")
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(given.encode(), csrf_token().encode()):
        abort(400, description="CSRF token missing or stale: reload the page")


# --- views ---------------------------------------------------------------------------------


def same_site_path(target: object, default: str) -> str:
    """`target` if it is a path on this site, else `default`: for ?next= and the language
    switch's `back`, which an attacker may set.

    Browsers drop tabs and newlines from a Location and read a backslash as a slash, so
    "/\t/evil.example" and "/\\evil.example" go to evil.example like "//evil.example" does;
    "/%2F%2F%2Fevil.example" in a query arrives here decoded as "////evil.example". A path
    must start with one "/" and hold no control character or backslash (a newline would
    also be refused by the response's header check, as a 500).
    """
    if not isinstance(target, str):
        return default
    # Checked as given and decoded once more, for a proxy or browser that decodes again.
    for form in (target, unquote(target)):
        if not form.startswith("/") or form.startswith("//") or "\\" in form:
            return default
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in form):
            return default
        parts = urlsplit(form)
        if parts.scheme or parts.netloc:
            return default
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        dbs = db.session()
        now = datetime.now(UTC)
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        result = authenticate(dbs, username, password, _remote_addr(), now)
        if result == "throttled":
            error, status = "throttled", 429
        elif result is None:
            dbs.commit()
            error, status = "wrong", 401
        else:
            start_session(dbs, result, now)
            dbs.commit()
            next_page = same_site_path(request.args.get("next"), url_for("admin.dashboard"))
            return redirect(next_page)
    return render_template("login.html", error=error), status


@bp.post("/logout")
def logout():
    token = session.get("sid")
    if token:
        dbs = db.session()
        dbs.execute(delete(AdminSession).where(AdminSession.id == _token_id(token)))
        dbs.commit()
    session.clear()
    return redirect(url_for("auth.login"))


# --- set-up --------------------------------------------------------------------------------


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--reset", is_flag=True, help="Set a new password and role if the user exists.")
def create_user_command(username: str, role: str, password: str, reset: bool) -> None:
    """Create an admin-page user (or, with --reset, change its password and role)."""
    with db.transaction(current_app) as dbs:
        try:
            user, created = ensure_user(dbs, username, password, role, reset=reset)
        except UserError as err:
            raise click.BadParameter(str(err)) from None
        verb = "created" if created else ("updated" if reset else "already exists, unchanged:")
        click.echo(f"user {user.username} {verb} (role {user.role})")


def _bootstrap_admin(app: Flask) -> Callable[[], None]:
    """BAGSCAN_ADMIN_PASSWORD: create `admin` once, on the first request (the schema is
    migrated by then; at create_app time it may not be)."""
    done = threading.Event()
    lock = threading.Lock()

    def hook() -> None:
        if done.is_set():
            return
        with lock:
            if done.is_set():
                return
            password = app.config.get("ADMIN_PASSWORD")
            if password:
                with db.transaction(app) as dbs:
                    ensure_user(dbs, "admin", str(password), "admin")
            done.set()

    return hook


def behind_https(app: Flask) -> bool:
    """HTTPS (docs/deploy.md): BAGSCAN_HTTPS=1, or unset and PUBLIC_URL starts with https://."""
    chosen = app.config.get("HTTPS")
    if chosen is None or chosen == "":
        return str(app.config.get("PUBLIC_URL") or "").startswith("https://")
    return str(chosen).strip().lower() not in ("0", "false", "no", "off")


# A year, as browsers' preload lists ask; HSTS is sent only when the gateway knows it is
# served over HTTPS, so a plain-HTTP install never locks browsers out.
HSTS = "max-age=31536000"


def _strict_transport(response):
    response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    # The cookie lives as long as the server's session row (Flask's own default is 31 days).
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    if behind_https(app):
        app.config["SESSION_COOKIE_SECURE"] = True
        app.after_request(_strict_transport)
    app.before_request(_bootstrap_admin(app))
    app.before_request(_check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
    app.jinja_env.globals["has_role"] = has_role
    if "create-user" not in app.cli.commands:
        app.cli.add_command(create_user_command)
