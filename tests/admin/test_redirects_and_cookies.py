"""Issue 21, findings 7 and 8: redirects stay on this site, the admin page asks before
re-provisioning a handheld, the session cookie lives as long as the server's session, and
behind HTTPS cookies are Secure and HSTS is sent."""

from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from adminpage import ADMIN_PASSWORD, csrf_of, log_in, now

from gateway import create_app, db
from gateway.web.auth import SESSION_LIFETIME

# Each would send the browser to evil.example (or, with a newline, made a 500).
OFF_SITE = [
    "//evil.example",
    "////evil.example",  # "/%2F%2F%2Fevil.example" in a query string, decoded once
    "/%2F%2F%2Fevil.example",  # the same, should anything decode it once more
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\nSet-Cookie: x=1",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_next_stays_on_this_site(app, target):
    c = app.test_client()
    token = csrf_of(c.get("/login").text)
    r = c.post(
        "/login",
        query_string={"next": target},
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 302 and r.location == "/"


def test_login_next_from_the_issue_stays_on_this_site(app):
    c = app.test_client()
    token = csrf_of(c.get("/login").text)
    r = c.post(
        "/login?next=/%2F%2F%2Fevil.example",
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 302 and r.location == "/"


@pytest.mark.parametrize("target", OFF_SITE)
def test_language_switch_back_stays_on_this_site(client, target):
    token = csrf_of(client.get("/").text)
    r = client.post("/lang", data={"lang": "zh", "back": target, "csrf_token": token})
    assert r.status_code == 302 and r.location == "/"


def test_a_same_site_path_is_kept(client):
    token = csrf_of(client.get("/").text)
    r = client.post(
        "/lang", data={"lang": "zh", "back": "/bags?status=closed", "csrf_token": token}
    )
    assert r.location == "/bags?status=closed"


def test_reprovisioning_an_existing_device_asks_first(client):
    page = client.get("/devices")
    first = client.post("/devices", data={"device_id": "hh-1", "csrf_token": csrf_of(page.text)})
    old_password = first.text.split('id="device-password">')[1].split("<")[0]
    again = client.post("/devices", data={"device_id": "hh-1", "csrf_token": csrf_of(page.text)})
    assert again.status_code == 409
    assert 'id="confirm-replace"' in again.text and 'id="device-password"' not in again.text
    confirmed = client.post(
        "/devices",
        data={"device_id": "hh-1", "replace": "1", "csrf_token": csrf_of(again.text)},
    )
    assert confirmed.status_code == 201
    new_password = confirmed.text.split('id="device-password">')[1].split("<")[0]
    assert new_password != old_password


def session_cookie(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))


def test_the_session_cookie_lives_as_long_as_the_server_session(app):
    r = log_in(app.test_client())
    expires = parsedate_to_datetime(session_cookie(r).split("Expires=")[1].split(";")[0])
    assert abs(expires - (now() + SESSION_LIFETIME)) < timedelta(minutes=1)
    assert "Secure" not in session_cookie(r)  # plain HTTP: the default PUBLIC_URL
    assert "Strict-Transport-Security" not in r.headers


@pytest.mark.parametrize(
    "config", [{"HTTPS": "1"}, {"PUBLIC_URL": "https://gw.example"}], ids=["HTTPS", "PUBLIC_URL"]
)
def test_behind_https_cookies_are_secure_and_hsts_is_sent(database_url, config):
    db.upgrade(database_url)
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret",
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            **config,
        }
    )
    try:
        c = app.test_client()
        https = {"base_url": "https://localhost"}  # a Secure cookie goes back over HTTPS only
        token = csrf_of(c.get("/login", **https).text)
        form = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token}
        r = c.post("/login", data=form, **https)
        assert r.status_code == 302 and "; Secure" in session_cookie(r)
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
        token = csrf_of(c.get("/", **https).text)
        data = {"lang": "zh", "back": "/", "csrf_token": token}
        lang = c.post("/lang", data=data, **https)
        assert "; Secure" in lang.headers["Set-Cookie"]
    finally:
        app.extensions["bagscan.engine"].dispose()
