"""A bag's history as the API and the admin page show it: its status changes and revisions.

A status change is dated by the device's (or the gateway's) time of the event. A revision is
dated by the gateway's time when a late record (or a late hub receipt, or a gateway event
older than what the bag had seen) made it fold the bag's records again and a derived fact
came out different: the status, the members, held-out parcels, the pickup scan, the arrival,
the handover the bag went with and that handover's receipt (issued late or withdrawn), a
gateway event that applies or no longer applies, a member's online time
(gateway/ingest/replay.py). The status changes are the same whatever
order the records came in; the revisions say how the gateway learned them (issue 15).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Bag, Revision

STATUS = "status"
REVISION = "revision"
REPLAY_ACTOR = "replay"  # who a revision names: the gateway, folding the records again


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # STATUS or REVISION
    from_status: str | None  # None for a revision (and for the bag's opening)
    to_status: str | None
    cause: str  # why the status changed; for a revision, the late record that caused it
    actor: str
    change: str | None = None  # a revision: what changed, "before -> after"


def entries(session: Session, bag: Bag) -> list[Entry]:
    """The bag's status changes and revisions by time; at one time, status changes first."""
    found = [Entry(h.at, STATUS, h.from_status, h.to_status, h.cause, h.actor) for h in bag.history]
    revisions = session.scalars(
        select(Revision).where(Revision.bag_id == bag.id).order_by(Revision.id)
    )
    found += [Entry(r.at, REVISION, None, None, r.cause, REPLAY_ACTOR, r.change) for r in revisions]
    return sorted(found, key=lambda e: (e.at, e.kind == REVISION))


def as_json(entry: Entry) -> dict:
    out = {
        "at": entry.at.isoformat(),
        "kind": entry.kind,
        "from": entry.from_status,
        "to": entry.to_status,
        "cause": entry.cause,
        "actor": entry.actor,
    }
    if entry.kind == REVISION:
        out["change"] = entry.change
    return out
