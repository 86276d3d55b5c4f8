"""The config feed sends a seller handheld its account's parcels as a base index in pages when
its status reports fewer on flash than the account has (issue 16), once, and again only when
they have not all been taken; many small deltas end in a full config, which keeps the
handheld's bucket files small (gateway/ingest/config_feed.py, docs/protocol.md "Index pages")."""

import json
from datetime import timedelta

import pytest
from conftest import SELLER

from gateway import clock, db
from gateway.ingest import config_feed
from gateway.models import Device
from protocol import config_schema


@pytest.fixture(autouse=True)
def frozen_clock(app):
    clock.freeze(clock.now())


def import_parcels(api, first: int, count: int) -> None:
    rows = [
        {"tracking_no": f"LZ7{i:08d}CN", "seller_id": SELLER[0], "status": "rts", "hub": "SZ"}
        for i in range(first, first + count)
    ]
    assert api.post("/api/parcels", {"parcels": rows})[0] == 200


def report(app, n: int, at: str) -> int:
    """The seller handheld's status: online, on its current version, n parcels on flash."""
    with db.sessions(app)() as session:
        device = session.get(Device, "hh-seller")
        device.online = True
        device.status = {"s": device.config_version, "n": n, "status_at": at}
        session.commit()
        return device.config_version


def feed_and_sent(app):
    """A feed past its first round, once the imports so far are older than its OVERLAP (it
    would send them again as changes), and what it sends from now on."""
    sent: list[tuple[str, dict, bool]] = []
    feed = config_feed.ConfigFeed(
        app, lambda device_id, data, retained: sent.append((device_id, json.loads(data), retained))
    )
    clock.advance(config_feed.OVERLAP + timedelta(seconds=1))
    tick(app, feed)
    sent.clear()
    return feed, sent


def tick(app, feed) -> None:
    with db.sessions(app)() as session:
        feed.tick(session)


def pages_to(sent, device_id="hh-seller"):
    return [msg for to, msg, _ in sent if to == device_id and "index" in msg]


def test_a_handheld_that_lacks_parcels_gets_the_index_once(app, api, world, monkeypatch):
    import_parcels(api, 0, 3_000)
    feed, sent = feed_and_sent(app)
    version = report(app, 440, "t1")
    tick(app, feed)
    pages = pages_to(sent)
    assert [p["index"][:2] for p in pages] == [[k + 1, len(pages)] for k in range(len(pages))]
    assert all(p["s"] == version and config_schema.page_error(p) is None for p in pages)
    assert not any(retained for *_, retained in sent)
    with db.sessions(app)() as session:
        size = config_feed.device_config.index_state(session, session.get(Device, "hh-seller"))[0]
    assert size >= 3_000
    sent.clear()
    tick(app, feed)  # the same status: the pages are on their way
    report(app, 440, "t2")  # a status before they all came
    tick(app, feed)
    assert pages_to(sent) == []
    monkeypatch.setattr(config_feed, "PAGES_WAIT_S", 0.0)
    report(app, 440 + size, "t3")  # all taken
    tick(app, feed)
    assert pages_to(sent) == []
    report(app, 440, "t4")  # a full config dropped the index: it comes again
    tick(app, feed)
    assert len(pages_to(sent)) == len(pages)


def test_pages_not_all_taken_in_time_are_sent_again(app, api, world, monkeypatch):
    import_parcels(api, 0, 1_000)
    feed, sent = feed_and_sent(app)
    report(app, 440, "t1")
    tick(app, feed)
    first = pages_to(sent)
    assert first
    sent.clear()
    monkeypatch.setattr(config_feed, "PAGES_WAIT_S", 0.0)
    tick(app, feed)  # the same status, past the wait: a page was lost
    assert pages_to(sent) == first


def test_a_handheld_holding_its_accounts_parcels_gets_no_index(app, api, world):
    feed, sent = feed_and_sent(app)
    with db.sessions(app)() as session:
        size = config_feed.device_config.index_state(session, session.get(Device, "hh-seller"))[0]
    report(app, size, "t1")  # all fit its full config
    tick(app, feed)
    assert pages_to(sent) == []


def test_many_small_deltas_end_in_a_full_config(app, api, world, monkeypatch):
    monkeypatch.setattr(config_feed, "OVERLAY_LIMIT", 3)
    report(app, 10_000, "t1")
    feed, sent = feed_and_sent(app)
    import_parcels(api, 0, 2)
    tick(app, feed)
    deltas = [(m, retained) for to, m, retained in sent if to == "hh-seller" and "parcels" in m]
    assert len(deltas) == 1 and "b" in deltas[0][0] and not deltas[0][1]
    sent.clear()
    import_parcels(api, 2, 2)  # 4 parcel entries since the last full config: over 3
    tick(app, feed)
    full = [(m, retained) for to, m, retained in sent if to == "hh-seller" and "parcels" in m]
    assert len(full) == 1 and "b" not in full[0][0] and full[0][1]
    assert config_schema.config_error(full[0][0]) is None
