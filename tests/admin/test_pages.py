"""The admin pages on a test client: escaping, CSV, headers, languages, late bags (issue 6)."""

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from adminpage import csrf_of, now

from gateway.domain import deadlines
from gateway.models import Bag, BagHistory, BagParcel, Device, Parcel, Record
from gateway.services import bag_list
from gateway.services.bag_list import csv_cell
from gateway.web import i18n
from gateway.web.admin import domain_text, local_time, queries

EVIL = '"><script>alert(1)</script>'
TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "templates"


def add_bag(dbs, bag_no="000001", trk="LZ1", due=None, status="awaiting_pickup", device="hh-1"):
    if dbs.get(Device, device) is None:
        dbs.add(Device(id=device, password_hash="x", bag_range_lo=1, bag_range_hi=1000,
                       applied_seq=0, online=True,
                       status={"fw": EVIL, "battery_mv": 3900, "backlog": 2, "clock_skew_s": -3}))  # fmt: skip
        dbs.flush()
    t = now() - timedelta(hours=30)
    bag = Bag(bag_no=bag_no, device_id=device, status=status, parcel_count=1, weight_g=1200,
              opened_at=t, closed_at=t, pickup_due_at=due, seller_id="S1")  # fmt: skip
    dbs.add(bag)
    dbs.flush()
    dbs.add(BagParcel(bag_id=bag.id, tracking_no=trk, added_at=t))
    dbs.add(
        BagHistory(
            bag_id=bag.id, at=t, from_status=None, to_status=status, cause=EVIL, actor=device
        )
    )
    dbs.add(Record(device_id=device, seq=bag.id, boot=1, kind="parcel", ticks=0, wall=0,
                   clock_ok=True, body={"bag": bag_no, "trk": trk}, occurred_at=t))  # fmt: skip
    dbs.commit()
    return bag


def test_a_script_barcode_is_text_on_every_page(client, dbs):
    add_bag(dbs, trk=EVIL, due=now() - timedelta(hours=1))
    dbs.add(Parcel(tracking_no=EVIL, seller_id=EVIL, status="rts", hub="SZ"))
    dbs.commit()
    pages = ["/", "/bags", "/bags?q=" + EVIL, "/bags/000001", "/parcels?trk=" + EVIL, "/devices"]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        assert "<script>alert" not in r.text, path
    for path in pages[2:]:
        assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(path).text, path


def test_every_page_sends_a_strict_content_security_policy(client):
    for path in ("/", "/bags", "/devices", "/login"):
        csp = client.get(path).headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp


def test_templates_have_no_inline_script_or_style_and_never_mark_data_safe():
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert "<style" not in text and "style=" not in text and " on" + "click" not in text
        assert "|safe" not in text.replace(" ", ""), path.name


def test_csv_cells_starting_with_formula_characters_are_neutralised(client, dbs):
    add_bag(dbs, bag_no="=HYPERLINK(1)")
    add_bag(dbs, bag_no="+1", trk="LZ2")
    add_bag(dbs, bag_no="-2", trk="LZ3")
    add_bag(dbs, bag_no="@SUM(A1)", trk="LZ4")
    r = client.get("/bags.csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    numbers = {row[0] for row in rows[1:]}
    assert numbers == {"'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)"}
    assert csv_cell(-5) == "-5"  # numbers are numbers, not formulas


def test_every_translated_text_has_its_chinese():
    texts = set()
    for path in TEMPLATES.glob("*.html"):
        texts.update(re.findall(r"""_\(\s*["']([^"']+)["']\s*\)""", path.read_text()))
    texts.update(c.page for c in bag_list.PAGE_COLUMNS)  # the bag list's headers
    texts.update(domain_text.english_texts())  # event names, causes, statuses, advice
    missing = sorted(t for t in texts if t not in i18n.ZH)
    assert not missing


def test_the_bag_page_and_its_csv_show_the_bag_list_columns(client, dbs):
    add_bag(dbs, bag_no="000042", due=now() - timedelta(hours=1))
    page = client.get("/bags", headers={"Accept-Language": "zh-CN"}).text
    headers = re.findall(r"<th>([^<]*)</th>", page.split('id="bags"')[1].split("</thead>")[0])
    assert headers == [i18n.ZH[c.page] for c in bag_list.PAGE_COLUMNS]
    row = page.split("<tbody>")[1].split("</tr>")[0]
    # One more cell than the columns: the admin's check box for printing labels.
    assert row.count("<td") == len(bag_list.PAGE_COLUMNS) + 1 and ">000042</a>" in row
    assert 'class="num">1200</td>' in row  # weight_g
    rows = list(csv.reader(io.StringIO(client.get("/bags.csv").text)))
    assert rows[0] == [c.csv for c in bag_list.CSV_COLUMNS]
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["late"] == "1"
    # Times in China time, their zone named, as the page shows them.
    closed = datetime.fromisoformat(row["closed_at"])
    assert closed.utcoffset() == timedelta(hours=8)
    assert local_time(closed) in page


def test_language_follows_the_browser_and_the_switch(client):
    assert "<h1>Dashboard" in client.get("/").text
    zh = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "<h1>总览" in zh.text
    token = csrf_of(zh.text)
    r = client.post("/lang", data={"lang": "en", "back": "/bags", "csrf_token": token})
    assert r.status_code == 302 and r.location == "/bags"
    assert "<h1>Bags" in client.get("/bags", headers={"Accept-Language": "zh-CN"}).text


def test_bag_list_filters_search_and_pages(client, dbs):
    for i in range(60):
        add_bag(
            dbs,
            bag_no=f"{i:06d}",
            trk=f"LZ{i:06d}CN",
            status="awaiting_pickup" if i % 2 else "arrived",
        )
    page = client.get("/bags").text
    assert "000059" in page and "000009" not in page and 'id="next"' in page
    nxt = re.search(r'id="next" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "000009" in client.get(nxt).text
    arrived = client.get("/bags?status=arrived").text
    assert "000058" in arrived and "000059" not in arrived
    found = client.get("/bags?q=LZ000042CN").text
    assert "000042" in found and "000043" not in found
    assert "000017" in client.get("/bags?q=00001").text


def test_late_is_a_waiting_bag_past_its_deadline(client, dbs):
    add_bag(dbs, bag_no="100001", due=now() - timedelta(minutes=5))
    add_bag(dbs, bag_no="100002", trk="LZ2", due=now() + timedelta(hours=2))
    add_bag(dbs, bag_no="100003", trk="LZ3", due=now() - timedelta(hours=5), status="picked_up")
    late = client.get("/bags?late=1").text
    assert "100001" in late and "100002" not in late and "100003" not in late
    dash = client.get("/").text
    assert 'id="late-count">1<' in dash


@pytest.mark.parametrize("hour", range(0, 24, 5))
def test_dashboard_day_is_china_time(hour):
    base = now().replace(hour=hour, minute=30)
    start, end = queries.day_bounds(queries.today(base))
    assert start <= base < end
    assert start.astimezone(deadlines._zone(deadlines.DEFAULT_TZ)).hour == 0


def test_bag_detail_shows_parcels_history_and_timeline(client, dbs):
    add_bag(dbs, bag_no="200001", trk="LZ9")
    page = client.get("/bags/200001").text
    for part in ('id="parcels"', "LZ9", 'id="history"', 'id="timeline"', "label.pdf"):
        assert part in page
    assert client.get("/bags/nope").status_code == 404


def test_label_download(client, dbs):
    add_bag(dbs, bag_no="300001")
    r = client.get("/bags/300001/label.pdf")
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
