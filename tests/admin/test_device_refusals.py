"""The devices page shows what a device recorded that the gateway refused or quarantined."""

from datetime import UTC, datetime

from gateway import db
from gateway.ingest import registry
from gateway.models import Device, Record
from gateway.services import devices


def test_the_devices_page_shows_a_role_refusal_and_a_quarantined_record(app, client):
    at = datetime(2026, 8, 8, 2, 0, tzinfo=UTC)
    with db.transaction(app) as session:
        hub, _ = devices.provision(session, "hh-hub", 100)
        hub.role = "hub"
        body = {"s": 1, "b": 1, "t": 1, "w": 0, "q": 0, "k": "bag_open", "bag": "BS0000000001"}
        record = Record(device_id="hh-hub", seq=1, boot=1, kind="bag_open", ticks=1, wall=0,
                        clock_ok=False, body=body, received_at=at, occurred_at=at)  # fmt: skip
        session.add(record)
        session.flush()
        registry.apply(session, hub, record)
        hub.status = dict(hub.status, quarantined_count=1,
                          last_quarantined={"seq": 7, "kind": "weigh", "error": "DataError: x"})  # fmt: skip
    page = client.get("/devices").text
    assert "#1 bag_open: DEVICE_ROLE" in page
    assert "#7: DataError: x" in page
    with db.sessions(app)() as session:
        assert session.get(Device, "hh-hub").status["refused_count"] == 1
