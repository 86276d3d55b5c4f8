"""A handheld's config on the devices page and in the exceptions queue (issues 16, 17); a
handover's refused and unknown bags on its page, its receipts and in the queue (issue 15)."""

import re
import subprocess
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from adminpage import now
from test_actions import post
from test_pages import add_bag

from gateway.domain import receipts
from gateway.models import Device, Disagreement, Handover, Receipt, Record


def add_device(dbs, device_id: str, online: bool, taken: int, sent: int, behind_for=None, **st):
    status = {"s": taken, "time": int(now().timestamp()) - 600, **st}
    if behind_for is not None:
        status["behind_since"] = (now() - behind_for).isoformat()
    dbs.add(Device(id=device_id, password_hash="x", bag_range_lo=1, bag_range_hi=10,
                   applied_seq=0, online=online, config_version=sent, status=status))  # fmt: skip
    dbs.commit()


def test_a_handheld_behind_on_its_config_for_5_minutes_is_an_exception(client, dbs):
    add_device(dbs, "hh-late", True, 7, 9, timedelta(minutes=6))
    add_device(dbs, "hh-soon", True, 7, 9, timedelta(minutes=4))  # the feed may still catch up
    add_device(dbs, "hh-off", False, 7, 9, timedelta(hours=2))  # offline: not while online
    page = client.get("/exceptions").text
    assert 'id="exceptions-count">1<' in page
    assert "Handheld config behind" in page and "config version 7, sent 9" in page
    assert "hh-soon" not in page and "hh-off" not in page

    ref = re.search(r'id="exception-config_behind-(hh-late@[0-9-]+)"', page).group(1)
    r = post(client, "/exceptions/resolve", "/exceptions", kind="config_behind", ref=ref,
             why="restarted it")  # fmt: skip
    assert r.status_code == 302
    page = client.get("/exceptions").text
    assert 'id="exceptions-count">0<' in page and "restarted it" in page


def test_the_devices_page_shows_each_handhelds_config_and_flags_one_behind(client, dbs):
    add_device(dbs, "hh-late", True, 7, 9, timedelta(minutes=6), n=52000)
    add_device(dbs, "hh-ok", True, 9, 9)
    page = client.get("/devices").text
    row = page.split("<td>hh-late</td>")[1].split("</tr>")[0]
    assert '<td class="num">52000</td>' in row  # the parcel index's size
    flag = re.search(r'id="behind-hh-late">([^<]+)<', row).group(1)
    assert flag.startswith("Behind (sent 9, since ")
    assert 'id="behind-hh-ok"' not in page
    # the status time add_device stored, read back (a clock second may pass since)
    changed = datetime.fromtimestamp(dbs.get(Device, "hh-late").status["time"], UTC)
    assert changed.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M:%S") in row
    zh = client.get("/devices", headers={"Accept-Language": "zh-CN"}).text
    assert "配置落后 (已发送 9" in zh and "小包索引" in zh


def add_handover_with_refusals(dbs) -> int:
    """A signed handover of three bags: 000001 handed over (scanned at 10:05 China time),
    000002 of another seller and 999999 unknown here, both refused, as the registry records
    them (receipt, disagreements of the handover's record)."""
    bag = add_bag(dbs)
    bag.picked_up_at = datetime(2026, 12, 6, 2, 5, tzinfo=UTC)
    other = add_bag(dbs, bag_no="000002", trk="LZ2")
    other.seller_id = "S9"
    listed = ("000001", "000002", "999999")
    rec = Record(device_id="hh-1", seq=900, boot=1, kind="handover", ticks=0, wall=0,
                 clock_ok=True, body={"hid": "h1"}, occurred_at=now())  # fmt: skip
    dbs.add(rec)
    dbs.flush()
    fields = receipts.HandoverFields(date(2026, 12, 6), "S1", "Shop", listed, "drv-7", "王师傅")
    sig = "ab" * 32
    h = Handover(device_id="hh-1", device_handover_id="h1", record_id=rec.id, driver_id="drv-7",
                 seller_id="S1", pickup_date=fields.pickup_date, bag_numbers=list(listed),
                 bag_count=3, signature=sig, signature_ok=True, at=now())  # fmt: skip
    dbs.add(h)
    dbs.flush()
    refused = [
        {"bag": "000002", "code": "HANDOVER_BAG", "reason": "bag 000002 is not of seller S1"},
        {"bag": "999999", "code": "UNKNOWN_BAG", "reason": "bag 999999 is unknown here"},
    ]
    dbs.add(Receipt(id=receipts.Receipt(fields, sig).receipt_id, handover_id=h.id,
                    pickup_date=fields.pickup_date, seller_id="S1", seller_name="Shop",
                    bag_numbers=list(listed), refused_bags=refused, driver_id="drv-7",
                    driver_name="王师傅", driver_signature=sig))  # fmt: skip
    for r in refused:
        dbs.add(Disagreement(device_id="hh-1", record_id=rec.id, at=now(), code=r["code"],
                             bag_no=r["bag"], message="handover h1: " + r["reason"]))  # fmt: skip
    bag.handover_id = h.id
    dbs.commit()
    return h.id


def test_a_handover_page_counts_the_bags_handed_over_and_marks_an_unknown_one(client, dbs):
    handover_id = add_handover_with_refusals(dbs)
    page = client.get(f"/handovers/{handover_id}").text
    assert "Bags (1)" in page and "Refused bags (2)" in page
    handed = page.split('id="handover-bags"')[1].split("</table>")[0]
    assert "000001" in handed and "000002" not in handed
    assert re.search(r'id="unknown-bags">[^<]*: 999999 ', page)
    unknown_row = re.search(r'<tr class="unknown-bag"><td>(\d+)', page).group(1)
    assert unknown_row == "999999"
    assert "bag 000002 is not of seller S1" in page

    queue = client.get("/exceptions").text
    card = queue.split("handover h1: bag 999999 is unknown here")[0].rsplit("<section", 1)[1]
    assert f'href="/handovers/{handover_id}">Handover #{handover_id}<' in card
    assert "The handover counted a bag this gateway does not know" in queue


def test_the_receipts_show_the_pickup_time_and_count_the_bags_handed_over(client, dbs, tmp_path):
    handover_id = add_handover_with_refusals(dbs)
    page = client.get(f"/handovers/{handover_id}/receipt").text
    counts = re.findall(r'<dd class="bag-count">([^<]+)</dd>', page)
    assert counts == ["1 (签收 signed 3, 未交接 refused 2)"] * 3
    assert (
        re.findall(r'<p class="bag-list">([^<]+)</p>', page) == ["大包号 Bag numbers: 000001"] * 3
    )
    refused = re.findall(r'<p class="refused">([^<]+)</p>', page)
    assert (
        refused
        == [
            "未交接 Refused: 000002 (bag 000002 is not of seller S1); "
            "999999 (bag 999999 is unknown here)"
        ]
        * 3
    )

    (tmp_path / "r.pdf").write_bytes(client.get(f"/handovers/{handover_id}/receipt.pdf").data)
    subprocess.run(["pdftotext", "-raw", "r.pdf", "r.txt"], cwd=tmp_path, check=True)
    text = (tmp_path / "r.txt").read_text()
    assert text.count("揽收时间 Pickup time 2026-12-06 10:05 (UTC+08:00)") == 3
    assert text.count("揽收大包数 Bags 1 (签收 signed 3, 未交接 refused 2)") == 3
    assert text.count("大包号 Bag numbers: 000001\n") == 3
