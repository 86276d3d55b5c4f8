"""A handheld sets its clock only from a config message that is not a retained replay: a
broker may have kept the retained config for hours, and the pickup scan's time is the legal
pickup time (docs/domain.md, "Online time"). The gateway's time alone ({"v", "time"}) is
taken and answered with a status (gateway/ingest/config_feed.py sends it)."""

import json

HANDHELD = r"""
import json, os
from app import clock, config
from app.parcels import FlashIndex


class Handheld:
    settings = {}


hh = Handheld()
hh.storage = "flash"
os.mkdir(hh.storage)
hh.parcels = FlashIndex(hh.storage + "/parcels")
hh.bags = FlashIndex(hh.storage + "/bags")
out = []
for payload, retained in json.load(open("messages.json")):
    answer = config.apply(hh, payload.encode(), retained)
    out.append([bool(answer), clock.synced, clock.wall()])
print(json.dumps(out))
"""

OLD = 1_780_000_000  # the time a retained config was built, hours before the boot
NOW = 1_780_020_000


def apply_all(run_mpy, tmp_path, messages):
    (tmp_path / "messages.json").write_text(json.dumps(messages))
    return json.loads(run_mpy(HANDHELD).stdout.strip().splitlines()[-1])


def test_a_retained_configs_time_is_not_taken(run_mpy, tmp_path):
    retained = json.dumps({"v": 1, "time": OLD, "unknown_parcel": "accept"})
    [(_, synced, wall)] = apply_all(run_mpy, tmp_path, [[retained, True]])
    assert not synced
    assert abs(wall - OLD) > 3600


def test_the_gateways_time_alone_is_taken_and_answered(run_mpy, tmp_path):
    retained = json.dumps({"v": 1, "time": OLD, "unknown_parcel": "accept"})
    told = json.dumps({"v": 1, "time": NOW})
    results = apply_all(run_mpy, tmp_path, [[retained, True], [told, False]])
    answered, synced, wall = results[1]
    assert answered and synced
    assert NOW <= wall <= NOW + 5
