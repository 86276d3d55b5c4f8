"""The seller's copy at the door end to end (issue 18 item 2): a courier's handover on the real
firmware, a real Mosquitto and a real gateway. The seller's phone reads the QR code off the
handheld's display (its screenshot, read by zbarimg) and opens what it leads to: "not synced
yet" while the handheld is offline, then the receipt the courier signed with its pickup time,
and its PDF."""

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from test_door_receipt import read_qr
from test_handheld_pickup import PIN

from devkit import provision
from devkit.broker import Mosquitto
from devkit.gateway_process import Gateway
from devkit.handheld import DEFAULT_HEAP, SimHandheld
from protocol.receipt import ID_HEX

SELLER = {"seller_id": "S7001", "seller_name": "深圳小商店"}
DRIVER = {"id": "D042", "name": "王师傅", "badge": "BADGE-042", "pin": PIN}


@pytest.fixture
def broker_and_gateway(tmp_path):
    """A private Mosquitto, and a gateway that sends its devices to it and names itself in the
    receipts' codes by its own address (PUBLIC_URL): where the seller's phone goes."""
    broker = Mosquitto().start()
    gateway = Gateway(
        tmp_path, mqtt_url=broker.url, extra_env={"BAGSCAN_DEVICE_MQTT_PORT": str(broker.port)}
    )
    gateway.env["BAGSCAN_PUBLIC_URL"] = gateway.url
    gateway.start()
    yield broker, gateway
    gateway.stop()
    broker.stop()
    shutil.rmtree(broker.dir, ignore_errors=True)


def ok(gateway: Gateway, method: str, path: str, body: dict) -> dict:
    status, answer = gateway.api(method, path, body)
    assert status in (200, 201), (method, path, status, answer)
    return answer


# The screens' language, at the simulator's heap (an ESP32's, the code in ROMFS).
@pytest.fixture(params=[("en", DEFAULT_HEAP), ("zh", DEFAULT_HEAP)], ids=["en", "zh"])
def sellers_handheld(request, broker_and_gateway, tmp_path):
    """A seller account with its store, its courier and one parcel ready to send, and its
    handheld in that language once it holds the gateway's config (parcels, courier, receipt
    URL and time)."""
    language, heap = request.param
    _, gateway = broker_and_gateway
    account = ok(gateway, "POST", "/api/accounts", {"name": "Shop"})["id"]
    ok(gateway, "POST", "/api/stores", SELLER)
    ok(gateway, "POST", f"/api/accounts/{account}/stores", SELLER)
    ok(gateway, "POST", "/api/drivers", {**DRIVER, "accounts": [account]})
    parcel = {"tracking_no": "LZDOOR0001", "seller_id": "S7001", "status": "rts", "hub": "SZ"}
    ok(gateway, "POST", "/api/parcels", {"parcels": [parcel]})
    answer = provision.register(
        gateway.url, gateway.token, "hh-door", role="seller", account_id=account
    )
    ok(gateway, "PATCH", "/api/devices/hh-door", {"language": language})
    config = provision.device_config(answer, [], broker_host="127.0.0.1")
    sim = SimHandheld.with_config(tmp_path / "flash" / "hh-door", config, heap)
    try:
        sim.start()
        # Its clock from the gateway (a retained config's time is not taken: the config feed
        # tells a handheld whose status says its clock is unset), so the status says q 1.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            devices = ok(gateway, "GET", "/api/devices", None)["devices"]
            status = next(d["status"] or {} for d in devices if d["device_id"] == "hh-door")
            if status.get("q") == 1 and (sim.state_dir / "parcels" / "digest").exists():
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the handheld never took the gateway's config and time")
        yield sim
    finally:
        sim.kill()


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_seller_scans_the_handhelds_code_and_opens_the_receipt_once_synced(
    broker_and_gateway, sellers_handheld, tmp_path
):
    broker, gateway = broker_and_gateway
    sim = sellers_handheld
    ctl = sim.control
    # The seller's staff bag the parcel; the bag reaches the gateway, awaiting pickup.
    assert ctl.scan("LZDOOR0001")["beep"] == "ok"
    ctl.weigh(2_000)
    ctl.key("ok")
    bag_no = ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]
    ctl.weigh(0)
    ctl.wait_synced()
    gateway.wait_applied()

    # The courier comes while the network is down. The handheld's clock at the start of a
    # minute (within the 120 s the gateway leaves a clock set by hand), so that the pickup
    # scan and the signature fall in the same minute.
    broker.stop()
    ctl.send(f"wall {int(time.time()) // 60 * 60 + 1}")
    ctl.state()
    ctl.key("mode")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "PICKUP")
    assert ctl.scan("DRV:D042")["beep"] == "ok"
    assert ctl.scan(f"PIN:{PIN}")["beep"] == "ok"
    assert ctl.scan(bag_no)["beep"] == "ok"
    ctl.key("ok")
    done = ctl.expect(lambda o: o.get("screen", [""])[0] == "HANDOVER")
    assert done["beep"] == "ok"
    # Beside the code: the bags and the pickup time, date, hours and minutes, zone.
    _, bags, year, month_day, hours_minutes, zone = done["screen"]
    assert bags == "1 bags" and zone == "UTC+8"
    assert re.fullmatch(r"\d\d:\d\d", hours_minutes)
    date = f"{year}-{month_day}"

    # The seller's phone reads the display.
    shot = tmp_path / "door.pbm"
    ctl.send(f"screenshot {shot}")
    ctl.expect(lambda o: o.get("saved") == str(shot))
    (url,) = read_qr(shot)
    assert url.startswith(gateway.url.upper() + "/R/")
    (handover,) = [r for r in sim.journal() if r["k"] == "handover"]
    assert (handover["date"], handover["bags"]) == (date, [bag_no])
    receipt_id, signature = url.rsplit("/", 2)[1:]
    assert signature == handover["sig"][:16].upper()

    # Before the handheld has synced: the receipt is not there yet.
    status, page = fetch(url)
    assert status == 404 and b'id="not-synced"' in page

    broker.start()  # same port
    ctl.wait_synced(60)
    gateway.wait_applied()
    status, page = fetch(url)
    text = page.decode()
    assert status == 200 and 'id="verified"' in text, text
    # The receipt the courier signed: the id is the hash of the signed message.
    (listed,) = ok(gateway, "GET", "/api/handovers", None)["handovers"]
    assert listed["device_handover_id"] == handover["hid"] and listed["signature_ok"]
    assert listed["receipt"]["id"] == receipt_id.lower()
    assert len(receipt_id) == ID_HEX and receipt_id.lower() in text
    assert bag_no in text and "王师傅" in text and "深圳小商店" in text
    # The pickup time the handheld showed: date, hours and minutes, zone.
    shown = f"{date} {hours_minutes} (UTC+08:00)"
    assert re.search(r'id="pickup-time">([^<]+)<', text).group(1) == shown

    pdf_path = re.search(r'id="receipt-pdf" href="([^"]+)"', text).group(1)
    status, pdf = fetch(gateway.url + pdf_path)
    assert status == 200 and pdf.startswith(b"%PDF")
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(["pdftotext", "-raw", "r.pdf", "r.txt"], cwd=tmp_path, check=True)
    assert (tmp_path / "r.txt").read_text().count(f"揽收时间 Pickup time {shown}") == 3

    # A code whose signature was altered leads nowhere: only the courier's key makes it.
    forged = url[:-1] + ("0" if url[-1] != "0" else "1")
    status, page = fetch(forged)
    assert status == 404 and b'id="not-verified"' in page
