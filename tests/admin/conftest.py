"""Fixtures for the admin page: an app on a fresh database, a logged-in client, a gateway
process with a known admin login."""

import pytest
from adminpage import ADMIN_PASSWORD, log_in

from gateway import create_app, db


@pytest.fixture
def app(database_url):
    url = database_url
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "test-secret", "ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    db.upgrade(url)
    yield app
    app.extensions["bagscan.engine"].dispose()


@pytest.fixture
def client(app):
    c = app.test_client()
    assert log_in(c).status_code == 302
    return c


@pytest.fixture
def dbs(app):
    with db.sessions(app)() as s:
        yield s


@pytest.fixture
def admin_gateway(monkeypatch, request):
    """The shared `gateway` fixture, started with BAGSCAN_ADMIN_PASSWORD set."""
    monkeypatch.setenv("BAGSCAN_ADMIN_PASSWORD", ADMIN_PASSWORD)
    return request.getfixturevalue("gateway")
