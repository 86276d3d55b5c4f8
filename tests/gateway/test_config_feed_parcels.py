"""The config feed looks again only at parcel rows that may still be new to it
(gateway/ingest/config_feed.py): a bulk import is read once, not at every tick until the next
change (at 50,000 parcels each tick took seconds and held up the parcel lookup's answers)."""

from datetime import timedelta

from gateway import clock, db
from gateway.ingest import config_feed


def test_a_quiet_feed_reads_no_parcel_of_an_import_again(app, api, monkeypatch):
    clock.freeze(clock.now())
    rows = [
        {"tracking_no": f"LZ{i:09d}CN", "seller_id": "S1", "status": "rts", "hub": "SZ"}
        for i in range(50)
    ]
    assert api.post("/api/parcels", {"parcels": rows})[0] == 200
    feed = config_feed.ConfigFeed(app, lambda *_: None)
    with db.sessions(app)() as session:
        feed.tick(session)  # the first round takes the newest row as its mark
    read = []  # the feed builds each row's entry as it reads it
    entry = config_feed.config_schema.parcel_entry
    monkeypatch.setattr(
        config_feed.config_schema, "parcel_entry", lambda *a: read.append(a) or entry(*a)
    )
    clock.advance(timedelta(seconds=1))
    with db.sessions(app)() as session:
        feed.tick(session)  # within OVERLAP: a late commit may still come, so it looks
    assert len(read) == 50
    read.clear()
    clock.advance(config_feed.OVERLAP)
    with db.sessions(app)() as session:
        feed.tick(session)
    assert read == []
