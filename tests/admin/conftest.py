"""Fixtures for the admin page: an app on a fresh database, a logged-in client, a browser."""

import re
from datetime import UTC, datetime

import pytest

from gateway import create_app, db

ADMIN_PASSWORD = "admin-pass-1"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(tmp_path):
    url = f"sqlite:///{tmp_path / 'admin.sqlite'}"
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "test-secret", "ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    db.upgrade(url)
    yield app
    app.extensions["bagscan.engine"].dispose()


def csrf_of(page_text: str) -> str:
    return CSRF_RE.search(page_text).group(1)


def log_in(client, username="admin", password=ADMIN_PASSWORD):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


@pytest.fixture
def client(app):
    c = app.test_client()
    assert log_in(c).status_code == 302
    return c


@pytest.fixture
def dbs(app):
    with db.sessions(app)() as s:
        yield s


def now() -> datetime:
    return datetime.now(UTC)
