"""The audit log: every action a person takes on the admin page, with the state before and after."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import db
from gateway.models import AuditEntry, User, utcnow

PER_PAGE = 100


def record(
    session: Session,
    user: User,
    action: str,
    target: str,
    before: dict | None = None,
    after: dict | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Add the entry to the action's own transaction: the caller commits both together."""
    entry = AuditEntry(
        at=at or utcnow(),
        username=user.username,
        role=user.role,
        action=action,
        target=target[:200],
        before=before,
        after=after,
    )
    session.add(entry)
    return entry


def page(session: Session, before: int | None, per_page: int = PER_PAGE):
    """Newest first, by keyset (`before` an entry id): (entries, next before or None)."""
    return db.newest_first(session, select(AuditEntry), AuditEntry, before, per_page)
