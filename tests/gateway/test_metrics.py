"""Prometheus metrics at /metrics and JSON-lines logs, from a real bagscan-gateway after real
device traffic (issue 19): the counts of the ingest's two processes and the HTTP process add
up in one scrape."""

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devkit.gateway_process import Gateway
from devkit.wire_device import RawMQTT, WireDevice, record
from protocol import wire

METRICS_TOKEN = "scrape-" + "x" * 16
RECORDS = 30
PER_MESSAGE = 10


def scrape(gw: Gateway, token: str | None = METRICS_TOKEN) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(gw.url + "/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def publish(port: int, device_id: str, password: str, kind: str, payload: bytes) -> None:
    """One QoS 1 message from the device's login, waiting for the broker's PUBACK."""
    raw = RawMQTT("127.0.0.1", port, f"{device_id}-extra", device_id, password)
    try:
        assert raw.connack == 0
        raw.publish(wire.topic(device_id, kind), payload, pid=1)
        assert raw.read()[0] == 0x40  # PUBACK
    finally:
        raw.close()


@pytest.fixture
def gateway(tmp_path):
    gw = Gateway(
        tmp_path,
        extra_env={"BAGSCAN_METRICS_TOKEN": METRICS_TOKEN, "BAGSCAN_LOG_FORMAT": "json"},
    ).start()
    yield gw
    gw.stop()


def test_metrics_count_what_the_ingest_and_http_did(gateway):
    gw = gateway
    status, body = gw.api("POST", "/api/devices", {"device_id": "hh-1"})
    assert status == 201, body
    password = body["mqtt"]["password"]
    device = WireDevice("127.0.0.1", gw.mqtt_port, "hh-1", password, batch=PER_MESSAGE)
    device.add([record(s) for s in range(1, RECORDS + 1)])
    device.start()
    try:
        assert device.wait_acked(20)
    finally:
        device.stop()
    publish(gw.mqtt_port, "hh-1", password, wire.EVENTS, b"not json")
    status_msg = {"v": wire.VERSION, "online": True, "backlog": 7}
    publish(gw.mqtt_port, "hh-1", password, wire.STATUS, json.dumps(status_msg).encode())
    gw.wait_applied()
    messages = RECORDS // PER_MESSAGE * (1 + device.resends) + 2

    values: dict = {}
    deadline = time.monotonic() + 10  # the status and the garbage follow the acknowledged records
    while time.monotonic() < deadline:
        code, text = scrape(gw)
        assert code == 200, text
        values = samples(text)
        # Receipt is counted on arrival, the commit time once the store answered: wait for both.
        if (
            values.get(("bagscan_ingest_messages_received_total", ())) == messages
            and values.get(("bagscan_ingest_commit_seconds_count", ())) == messages
            and values.get(("bagscan_handhelds_connected", ()))
        ):
            break
        time.sleep(0.2)

    assert values[("bagscan_ingest_messages_received_total", ())] == messages
    assert values[("bagscan_ingest_messages_rejected_total", (("reason", "not_json"),))] == 1
    assert values[("bagscan_ingest_records_received_total", ())] == RECORDS * (1 + device.resends)
    assert values[("bagscan_ingest_records_stored_total", ())] == RECORDS
    assert values[("bagscan_ingest_records_applied_total", ())] == RECORDS
    assert values[("bagscan_ingest_commit_seconds_count", ())] == messages
    assert values[("bagscan_ingest_commit_seconds_bucket", (("le", "+Inf"),))] == messages
    assert values[("bagscan_apply_lag_records", ())] == 0
    assert values[("bagscan_handhelds_connected", ())] == 1
    assert values[("bagscan_handheld_backlog_records", (("device", "hh-1"),))] == 7
    assert values[("bagscan_up", (("part", "database"),))] == 1
    assert values[("bagscan_up", (("part", "mqtt_ingest"),))] == 1
    provisioned = (("method", "POST"), ("route", "/api/devices"), ("status", "201"))
    assert values[("bagscan_http_request_seconds_count", provisioned)] == 1

    # the logs are JSON lines; the garbage names its device
    lines = [json.loads(line) for line in gw.log.read_text().splitlines() if line.strip()]
    rejected = [line for line in lines if line["message"].startswith("rejected message")]
    assert [line.get("device") for line in rejected] == ["hh-1"]
    assert {"time", "level", "logger", "message"} <= set(rejected[0])


def test_metrics_need_their_own_token(gateway):
    assert scrape(gateway, token=None)[0] == 401
    assert scrape(gateway, token=gateway.token)[0] == 401  # the API token is not it


def test_metrics_are_off_without_a_token(tmp_path):
    gw = Gateway(tmp_path).start()
    try:
        code, text = scrape(gw, token="anything")
    finally:
        gw.stop()
    assert code == 404 and "BAGSCAN_METRICS_TOKEN" in text
