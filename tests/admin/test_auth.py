"""Accounts on the admin page: login, logout, CSRF, throttling, roles (issue 6)."""

from datetime import timedelta

from adminpage import ADMIN_PASSWORD, csrf_of, log_in, now
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from gateway.models import LoginFailure, User
from gateway.web import auth


def test_pages_need_a_login(app):
    c = app.test_client()
    for path in (
        "/",
        "/bags",
        "/bags.csv",
        "/devices",
        "/handovers",
        "/parcels",
        "/events/dashboard",
    ):
        r = c.get(path)
        assert r.status_code == 302 and r.location.startswith("/login"), path


def test_admin_password_from_the_environment_creates_admin(app, dbs):
    app.test_client().get("/login")
    user = dbs.scalars(select(User).where(User.username == "admin")).one()
    assert user.role == "admin"
    assert user.password_hash != ADMIN_PASSWORD and user.password_hash.startswith("scrypt")


def test_ensure_user_leaves_an_existing_password_alone(app, dbs):
    auth.ensure_user(dbs, "lead", "first-pass", "dispatcher")
    user, created = auth.ensure_user(dbs, "lead", "second-pass", "admin")
    dbs.commit()
    assert not created and user.role == "dispatcher"
    assert log_in(app.test_client(), "lead", "first-pass").status_code == 302


def test_create_user_command(app):
    result = FlaskCliRunner(app).invoke(
        args=["create-user", "ops", "--role", "viewer", "--password", "ops-pass-1"]
    )
    assert "user ops created (role viewer)" in result.output
    assert log_in(app.test_client(), "ops", "ops-pass-1").status_code == 302


def test_session_cookie_is_httponly_and_samesite_lax(app):
    c = app.test_client()
    r = log_in(c)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_renews_the_session(app):
    c = app.test_client()
    c.get("/login")
    before = c.get_cookie("session").value
    log_in(c)
    after = c.get_cookie("session").value
    assert after != before
    # The pre-login cookie (e.g. one an attacker planted) grants nothing.
    c2 = app.test_client()
    c2.set_cookie("session", before)
    assert c2.get("/").status_code == 302


def test_post_without_csrf_token_is_refused(client):
    r = client.post("/devices", data={"device_id": "hh-x"})
    assert r.status_code == 400
    r = client.post("/logout")
    assert r.status_code == 400
    assert client.get("/").status_code == 200  # still logged in
    r = client.post("/devices", data={"device_id": "hh-x", "csrf_token": "0" * 64})
    assert r.status_code == 400


def test_login_without_csrf_token_is_refused(app):
    r = app.test_client().post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 400


def test_old_session_cookie_is_refused_after_logout(app, client):
    stolen = client.get_cookie("session").value
    assert client.get("/bags").status_code == 200
    token = csrf_of(client.get("/").text)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    r = replay.get("/bags")
    assert r.status_code == 302 and r.location.startswith("/login")


def test_11th_wrong_password_in_an_hour_is_throttled(app, dbs):
    c = app.test_client()
    for _ in range(10):
        assert log_in(c, password="wrong-password").status_code == 401
    r = log_in(c, password="wrong-password")
    assert r.status_code == 429
    # Even the right password waits out the hour: a guesser learns nothing after 10.
    assert log_in(c).status_code == 429
    assert dbs.scalar(select(func.count()).select_from(LoginFailure)) == 10


def test_failures_older_than_an_hour_do_not_count(app, dbs):
    for _ in range(10):
        dbs.add(
            LoginFailure(
                username="admin", remote_addr="127.0.0.1", at=now() - timedelta(minutes=61)
            )
        )
    dbs.commit()
    assert log_in(app.test_client()).status_code == 302


def test_unknown_user_and_wrong_password_look_the_same(app):
    a = log_in(app.test_client(), "nobody", "whatever-1")
    b = log_in(app.test_client(), "admin", "whatever-1")
    assert a.status_code == b.status_code == 401
    assert "Wrong username or password." in a.text and "Wrong username or password." in b.text


def test_next_only_goes_to_our_own_pages(app):
    c = app.test_client()
    token = csrf_of(c.get("/login").text)
    r = c.post(
        "/login?next=//evil.example/x",
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert r.location == "/"


def test_viewer_cannot_provision_a_device(app, dbs):
    auth.ensure_user(dbs, "viewer1", "viewer-pass", "viewer")
    dbs.commit()
    c = app.test_client()
    log_in(c, "viewer1", "viewer-pass")
    page = c.get("/devices")
    assert 'id="provision"' not in page.text
    r = c.post("/devices", data={"device_id": "hh-v", "csrf_token": csrf_of(page.text)})
    assert r.status_code == 403


def test_admin_provisions_a_device_and_sees_the_password_once(client):
    page = client.get("/devices")
    r = client.post("/devices", data={"device_id": "hh-new", "csrf_token": csrf_of(page.text)})
    assert r.status_code == 201
    assert 'id="device-password"' in r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert 'id="device-password"' not in client.get("/devices").text
