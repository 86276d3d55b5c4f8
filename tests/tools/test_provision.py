"""tools/provision: registers a handheld with a real gateway and writes the config the firmware
reads; the simulated handheld runs on that very file and its bag reaches the gateway."""

import json
import shutil
import stat

from devkit import flash, provision


def run(gateway, tmp_path, *extra, device_id="hh-0042"):
    out = tmp_path / f"{device_id}.json"
    args = ["--gateway", gateway.url, "--token", gateway.token, "--device-id", device_id,
            "--out", str(out), *extra]  # fmt: skip
    return provision.main(args), out


def test_provisioned_config_has_the_firmware_shape_and_is_private(gateway, tmp_path):
    rc, out = run(gateway, tmp_path, "--wifi", "Warehouse:pass:word1", "--wifi", "Office:12345678",
                  "--broker-host", "gw.example", "--broker-port", "8883")  # fmt: skip
    assert rc == 0
    cfg = json.loads(out.read_text())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert cfg["device_id"] == "hh-0042"
    assert cfg["mqtt"]["host"] == "gw.example" and cfg["mqtt"]["port"] == 8883
    assert cfg["mqtt"]["user"] == "hh-0042" and len(cfg["mqtt"]["password"]) >= 16
    assert cfg["wifi"] == [
        {"ssid": "Warehouse", "password": "pass:word1"},
        {"ssid": "Office", "password": "12345678"},
    ]
    lo, hi = cfg["bag_range"]
    assert 1 <= lo < hi


def test_the_gateways_loopback_broker_address_is_refused(gateway, tmp_path, capsys):
    rc, out = run(gateway, tmp_path)
    assert rc == 1 and not out.exists()
    assert "--broker-host" in capsys.readouterr().err


def test_a_ca_turns_tls_on_and_flash_takes_it_onto_the_device(gateway, tmp_path, capsys):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    rc, out = run(gateway, tmp_path, "--broker-host", "gw.example", "--ca", str(ca))
    assert rc == 0
    assert json.loads(out.read_text())["mqtt"]["tls"] is True
    stage = tmp_path / "stage"
    assert flash.main(["--dry-run", "--config", str(out), "--stage", str(stage)]) == 0
    on_device = json.loads((stage / "data" / "config.json").read_text())
    assert on_device["mqtt"]["ca"] == "/data/ca.pem"
    assert (stage / "data" / "ca.pem").read_bytes() == ca.read_bytes()


def test_reprovisioning_needs_replace_and_keeps_the_bag_range(gateway, tmp_path, capsys):
    _, first = run(gateway, tmp_path, "--broker-host", "gw.example")
    before = json.loads(first.read_text())
    rc, _ = run(gateway, tmp_path, "--broker-host", "gw.example")
    assert rc == 1 and "DEVICE_EXISTS" in capsys.readouterr().err
    assert json.loads(first.read_text()) == before  # the old config is left alone
    rc, again = run(gateway, tmp_path, "--broker-host", "gw.example", "--replace")
    assert rc == 0
    after = json.loads(again.read_text())
    assert after["bag_range"] == before["bag_range"]
    assert after["mqtt"]["password"] != before["mqtt"]["password"]


def test_a_hub_handheld_is_registered_with_its_role(gateway, tmp_path):
    rc, _ = run(gateway, tmp_path, "--broker-host", "gw.example", "--role", "hub",
                device_id="hub-1")  # fmt: skip
    assert rc == 0
    status, body = gateway.api("GET", "/api/devices")
    assert status == 200
    assert {d["device_id"]: d["role"] for d in body["devices"]}["hub-1"] == "hub"


def test_a_wrong_token_or_id_is_reported(gateway, tmp_path, capsys):
    out = tmp_path / "x.json"
    base = ["--gateway", gateway.url, "--out", str(out), "--broker-host", "h"]
    assert provision.main([*base, "--token", "nope", "--device-id", "hh-1"]) == 1
    assert "401 UNAUTHORIZED" in capsys.readouterr().err
    assert provision.main([*base, "--token", gateway.token, "--device-id", "bad id!"]) == 1
    assert "BAD_FIELD" in capsys.readouterr().err
    assert provision.main([*base, "--token", gateway.token, "--device-id", "hh-1",
                           "--wifi", "no-colon"]) == 1  # fmt: skip
    assert not out.exists()


def test_a_handheld_running_on_the_provisioned_config_reaches_the_gateway(
    gateway, handhelds, tmp_path
):
    rc, out = run(gateway, tmp_path, "--broker-host", "127.0.0.1", device_id="hh-prov")
    assert rc == 0
    flash_dir = tmp_path / "flash" / "hh-prov"
    flash_dir.mkdir(parents=True)
    shutil.copyfile(out, flash_dir / "config.json")  # what tools/flash puts in /data
    hh = handhelds(gateway, "hh-prov").control
    assert hh.scan("LZ555000001CN")["beep"] == "ok"
    hh.weigh(1200)
    hh.key("ok")
    bag_no = hh.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]
    hh.wait_synced()
    gateway.wait_applied()
    status, bag = gateway.api("GET", f"/api/bags/{bag_no}")
    assert status == 200 and bag["parcels"] == ["LZ555000001CN"]
    assert bag["device_id"] == "hh-prov"
