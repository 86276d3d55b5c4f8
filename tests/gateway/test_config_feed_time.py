"""The config feed tells a handheld the gateway's time when its status says its clock is
unset or off (gateway/ingest/config_feed.py): the handheld no longer takes the time of a
retained config, which a broker may have kept for hours."""

import json

from gateway import db
from gateway.ingest import config_feed
from gateway.models import Device


def set_status(app, device_id: str, **status) -> None:
    with db.transaction(app) as session:
        device = session.get(Device, device_id)
        device.online = True
        device.status = {"online": True, **status}


def times_sent(app) -> list[tuple[str, dict]]:
    sent = []
    feed = config_feed.ConfigFeed(app, lambda d, data, retained: sent.append((d, data, retained)))
    with db.sessions(app)() as session:
        feed.tick(session)
    return [(d, json.loads(data)) for d, data, retained in sent if not retained]


def test_a_handheld_whose_clock_is_unset_is_told_the_time(app, world):
    set_status(app, "hh-seller", q=0, wall=1000, clock_skew_s=-1_700_000_000)
    told = [(d, body) for d, body in times_sent(app) if set(body) == {"v", "time"}]
    assert [d for d, _ in told] == ["hh-seller"]
    assert told[0][1]["v"] == 1 and told[0][1]["time"] > 1_700_000_000


def test_a_handheld_whose_clock_is_off_is_told_the_time_one_that_is_right_is_not(app, world):
    set_status(app, "hh-seller", q=1, clock_skew_s=config_feed.CLOCK_RESYNC_S + 1)
    set_status(app, "hh-hub", q=1, clock_skew_s=-2)
    told = [d for d, body in times_sent(app) if set(body) == {"v", "time"}]
    assert told == ["hh-seller"]
