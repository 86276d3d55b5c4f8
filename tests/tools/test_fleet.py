"""tools/sim fleet: 20 simulated handhelds run the scenario's day against a real gateway, and
the gateway's bags match the scenario's totals exactly (docs/tools.md, "Scenarios")."""

import io
import json
import socket
import time

import pytest

from devkit.fleet import scenario, worker
from devkit.fleet.cli import run
from devkit.fleet.display import Display
from devkit.fleet.fleet import Fleet
from devkit.fleet.link import Link


def default_day() -> dict:
    return scenario.load(scenario.DEFAULT_SCENARIO)


def test_the_default_day_plans_twenty_handhelds_and_its_stated_totals():
    day = scenario.plan(default_day())
    roles = [d.role for d in day.devices]
    assert len(day.devices) == 20
    assert roles.count("seller") == 18 and roles.count("hub") == 2
    assert day.totals() == {k: default_day()["expect"][k] for k in day.totals()}
    assert len({d.device_id for d in day.devices}) == 20


def test_a_fleet_size_spreads_the_warehouse_handhelds_over_the_sellers():
    with pytest.raises(scenario.ScenarioError, match="fewer than one per seller"):
        scenario.plan(default_day(), devices=5)  # 2 for hubs leave 3 for 4 sellers
    day = scenario.plan(default_day(), devices=8)
    sites = [d.site for d in day.devices if d.role == "seller"]
    assert sites == ["SZ-GADGETS", "SZ-GADGETS", "SZ-HOME", "SZ-HOME", "DG-TOYS", "GZ-FASHION"]
    assert day.bags == 6 * 3
    assert day.totals()["statuses"] == {"pickup_failed": 1, "received": 16, "received_exception": 1}


def test_a_scenario_whose_expectations_disagree_with_its_day_is_refused():
    bad = default_day()
    bad["expect"]["bags"] = 47
    with pytest.raises(scenario.ScenarioError, match="disagrees"):
        scenario.plan(bad)
    bad = default_day()
    bad["day"].append({"do": "dance"})
    with pytest.raises(scenario.ScenarioError, match="unknown step 'dance'"):
        scenario.plan(bad)


def test_an_outage_on_the_link_cuts_connections_and_refuses_new_ones():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        link = Link("127.0.0.1", server.getsockname()[1]).start()
        try:
            client = socket.create_connection(("127.0.0.1", link.port), timeout=5)
            peer, _ = server.accept()
            client.sendall(b"CONNECT")
            assert peer.recv(16) == b"CONNECT"
            link.set_up(False)
            client.settimeout(5)
            assert client.recv(16) == b""  # cut
            late = socket.create_connection(("127.0.0.1", link.port), timeout=5)
            late.settimeout(5)
            assert late.recv(16) == b""  # refused while down
            link.set_up(True)
            time.sleep(0.1)
            again = socket.create_connection(("127.0.0.1", link.port), timeout=5)
            peer2, _ = server.accept()
            again.sendall(b"BACK")
            assert peer2.recv(16) == b"BACK"
            for s in (client, peer, late, again, peer2):
                s.close()
        finally:
            link.stop()


def bagging_day() -> dict:
    """The scenario's morning: bagging, the Wi-Fi outage, back online; no pickups yet."""
    day = default_day()
    day["day"] = [s for s in day["day"] if s["do"] in ("bag", "outage")] + [{"do": "sync"}]
    day["expect"] = {
        "bags": 54,
        "parcels": 324,
        "refused_scans": 90,
        "refusals": {"CANCELLED": 18, "DUPLICATE": 36, "NOT_RTS": 36},
        "statuses": {"awaiting_pickup": 54},
    }
    return day


def bag_statuses(gateway) -> dict:
    status, page = gateway.api("GET", "/api/bags?per_page=200")
    assert status == 200
    out: dict = {}
    for b in page["bags"]:
        if b["device_id"].startswith("day-"):
            out[b["status"]] = out.get(b["status"], 0) + 1
    return out


@pytest.mark.slow
def test_twenty_handhelds_bag_through_an_outage_and_the_gateway_matches_exactly(gateway, tmp_path):
    day = Fleet(gateway.url, gateway.token, bagging_day(), tmp_path / "fleet")
    out = io.StringIO()
    started = time.monotonic()
    problems = run(day, Display(day, out, live=False))
    assert problems == []
    assert time.monotonic() - started < 90
    assert len(day.plan.devices) == 20
    # The gateway, asked directly: every planned bag and status, nothing more.
    assert bag_statuses(gateway) == {"awaiting_pickup": 54}
    assert day.tally()["refused_scans"] == 90
    # The handhelds were offline for part of the day, and the display said so.
    log = out.getvalue()
    assert "link DOWN" in log and "step 3/3 sync" in log
    assert all(u.sim.proc.poll() is not None for u in day.units), "no handheld left running"


@pytest.mark.slow
def test_twenty_handhelds_run_the_whole_day_and_the_gateway_matches_exactly(gateway, tmp_path):
    day = Fleet(gateway.url, gateway.token, default_day(), tmp_path / "fleet")
    started = time.monotonic()
    problems = run(day, Display(day, io.StringIO(), live=False))
    assert problems == []
    assert time.monotonic() - started < 100
    expect = default_day()["expect"]
    assert bag_statuses(gateway) == expect["statuses"]
    assert len(day.handovers) == expect["handovers"]
    assert sum(h["receipt"] is not None for h in day.handovers) == expect["receipts"]
    assert day.tally()["refused_scans"] == expect["refused_scans"]
    # The parcels the cache refused (not ready to ship, cancelled) are in no bag, and the
    # gateway still has them in the platform's state.
    refused = [t for w in day.workers.values() for t in w.refused_parcels]
    assert len(refused) == expect["refusals"]["NOT_RTS"] + expect["refusals"]["CANCELLED"]
    for trk in refused:
        status, parcel = gateway.api("GET", f"/api/parcels/{trk}")
        assert status == 200 and parcel["bag_no"] is None, parcel
        assert parcel["status"] in ("pending", "cancelled")


def test_the_refusal_reasons_are_the_firmwares():
    from protocol import wire

    assert scenario.REFUSE_REASONS == wire.REFUSE_REASONS


def test_the_cache_refusal_codes_are_the_firmwares_and_the_gateways_statuses():
    from gateway.domain import bag_rules
    from protocol import rules

    assert set(scenario.NOT_BAGGABLE) == set(bag_rules.PARCEL_STATUSES) - {bag_rules.RTS}
    assert set(scenario.NOT_BAGGABLE.values()) | {scenario.DUPLICATE} <= set(rules.CODES)


def test_the_import_lists_every_parcel_a_handheld_scans_in_scan_order():
    rows = worker.parcels_to_import(default_day()["day"], 2, 3)
    assert len(rows) == 2 * 7 + 1 * 7  # morning 2 bags, offline 1 bag: 6 good + 1 refused each
    assert rows[:7] == [(worker.parcel_number(2, 3, n), "rts") for n in range(1, 7)] + [
        (worker.refused_number(2, 3, 1), "pending")
    ]
    assert rows[-1] == (worker.refused_number(2, 3, 3), "cancelled")
    assert len({t for t, _ in rows}) == len(rows)


def test_a_seller_with_more_parcels_than_the_cache_holds_is_refused():
    big = default_day()
    big["day"][0]["bags"] = 20
    big.pop("expect")
    with pytest.raises(scenario.ScenarioError, match="cache holds about"):
        scenario.plan(big)


def test_the_live_table_redraws_in_place(tmp_path):
    day = Fleet("http://127.0.0.1:1", "t", default_day(), tmp_path)
    day.link = Link("127.0.0.1", 1)  # not started: only read by the table
    out = io.StringIO()
    display = Display(day, out, live=True)
    display.draw()
    day.plan.devices[0].bags = 2
    display.draw()
    text = out.getvalue()
    assert (
        text.count("\x1b[23F") == 1
    )  # 20 handhelds, 2 header lines, 1 total  # the second frame moves up over the first
    assert "day-sz-gadgets-1" in text and json.dumps(day.summary())
