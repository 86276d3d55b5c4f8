"""What the admin tests share besides fixtures (a module of its own: `conftest` is ambiguous
when several test folders have one)."""

import re
from datetime import UTC, datetime

ADMIN_PASSWORD = "admin-pass-1"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page_text: str) -> str:
    return CSRF_RE.search(page_text).group(1)


def log_in(client, username="admin", password=ADMIN_PASSWORD):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def now() -> datetime:
    return datetime.now(UTC)
