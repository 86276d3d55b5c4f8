"""Actions on the admin page by role (issue 17): each is checked on the server, needs its CSRF
token, and leaves an audit entry; the exceptions queue and its resolve action; bulk labels."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from adminpage import add_handover, csrf_of, log_in, now
from sqlalchemy import select
from test_pages import add_bag

from gateway.domain import labels
from gateway.models import AuditEntry, Bag, Device, Disagreement, ExceptionResolution, Parcel
from gateway.services import devices, exceptions
from gateway.web import auth


def as_user(app, dbs, role: str):
    """A test client logged in as a fresh user of `role`."""
    auth.ensure_user(dbs, role + "-1", "password-1", role)
    dbs.commit()
    c = app.test_client()
    assert log_in(c, role + "-1", "password-1").status_code == 302
    return c


def post(client, path: str, page: str = "/", **form):
    """A form post as the page sends it: with the CSRF token of the page it came from."""
    form["csrf_token"] = csrf_of(client.get(page).text)
    return client.post(path, data=form)


def flashed(client, page: str) -> str:
    return " ".join(
        re.findall(r'<p class="flash [a-z]+" role="status">([^<]*)</p>', client.get(page).text)
    )


def audit_rows(dbs) -> list[AuditEntry]:
    dbs.expire_all()
    return list(dbs.scalars(select(AuditEntry).order_by(AuditEntry.id)))


ACTIONS = [
    ("/bags/000001/cancel", {"reason": "seller asked"}),
    ("/bags/000001/events", {"event": "receipt_fail", "cause": "x"}),
    ("/parcels/receipts", {"tracking_nos": "LZ1"}),
    ("/exceptions/resolve", {"kind": "late_pickup", "ref": "000001", "why": "x"}),
    ("/labels.pdf", {"bag": "000001"}),
]
ADMIN_ACTIONS = [
    ("/setup/accounts", {"name": "Acme"}),
    ("/setup/stores", {"seller_id": "S9", "seller_name": "Shop"}),
    ("/setup/addresses", {"account_id": "1", "kind": "pickup", "service": "paid"}),
    ("/setup/couriers", {"id": "drv-9", "name": "Li", "pin": "1234"}),
    ("/users", {"username": "eve", "password": "password-9", "role": "admin"}),
    ("/devices/hh-1/language", {"language": "zh"}),
]


@pytest.mark.parametrize(("path", "form"), ACTIONS + ADMIN_ACTIONS)
def test_a_viewer_may_not_act(app, dbs, path, form):
    add_bag(dbs, due=now() - timedelta(hours=1))
    viewer = as_user(app, dbs, "viewer")
    assert post(viewer, path, **form).status_code == 403
    assert audit_rows(dbs) == []
    assert dbs.scalars(select(Bag.status)).one() == "awaiting_pickup"


@pytest.mark.parametrize(("path", "form"), ADMIN_ACTIONS)
def test_a_dispatcher_may_not_set_up(app, dbs, path, form):
    dispatcher = as_user(app, dbs, "dispatcher")
    assert post(dispatcher, path, **form).status_code == 403
    assert audit_rows(dbs) == []


@pytest.mark.parametrize(("path", "form"), ACTIONS)
def test_an_action_without_its_csrf_token_is_refused(client, dbs, path, form):
    add_bag(dbs, due=now() - timedelta(hours=1))
    assert client.post(path, data=form).status_code == 400
    assert client.post(path, data={**form, "csrf_token": "0" * 64}).status_code == 400
    assert audit_rows(dbs) == []


def test_a_dispatcher_cancels_a_bag_and_the_audit_log_says_so(app, dbs):
    add_bag(dbs)
    dispatcher = as_user(app, dbs, "dispatcher")
    r = post(dispatcher, "/bags/000001/cancel", "/bags/000001", reason="seller asked")
    assert r.status_code == 302 and r.location.endswith("/bags/000001")
    assert "Bag cancelled." in flashed(dispatcher, "/bags/000001")
    (entry,) = audit_rows(dbs)
    assert (entry.username, entry.role, entry.action) == (
        "dispatcher-1",
        "dispatcher",
        "cancel_bag",
    )
    assert entry.before == {"status": "awaiting_pickup"}
    assert entry.after == {"status": "cancelled", "reason": "seller asked"}
    page = dispatcher.get("/audit").text
    assert "dispatcher-1" in page and "awaiting_pickup" in page and "Cancel bag" in page


def test_an_admin_chooses_a_handhelds_language_and_the_audit_log_says_so(client, dbs):
    devices.provision(dbs, "hh-1", 1000)
    dbs.commit()
    assert dbs.get(Device, "hh-1").language == "zh"  # the first mile's, by default
    r = post(client, "/devices/hh-1/language", "/devices", language="en")
    assert r.status_code == 302 and r.location.endswith("/devices")
    dbs.expire_all()
    assert dbs.get(Device, "hh-1").language == "en"
    (entry,) = audit_rows(dbs)
    assert (entry.action, entry.before, entry.after) == (
        "device_language",
        {"language": "zh"},
        {"language": "en"},
    )
    assert post(client, "/devices/hh-1/language", "/devices", language="fr").status_code == 400
    assert post(client, "/devices/nobody/language", "/devices", language="zh").status_code == 404
    assert len(audit_rows(dbs)) == 1


def test_cancel_after_pickup_is_refused_with_the_manuals_reason(client, dbs):
    add_bag(dbs, status="picked_up")
    r = post(client, "/bags/000001/cancel", "/bags/000001")
    assert r.status_code == 302
    message = flashed(client, "/bags/000001")
    assert "CANCEL_AFTER_PICKUP" in message and "manual FAQ 8" in message
    assert dbs.scalars(select(Bag.status)).one() == "picked_up"
    assert audit_rows(dbs) == []


def test_receipt_failed_then_retried(client, dbs):
    add_bag(dbs, status="arrived")
    post(client, "/bags/000001/events", "/bags/000001", event="receipt_fail", cause="label torn")
    dbs.expire_all()
    assert dbs.scalars(select(Bag.status)).one() == "receipt_failed"
    assert 'id="event-receive"' in client.get("/bags/000001").text
    post(client, "/bags/000001/events", "/bags/000001", event="receive", cause="found it")
    dbs.expire_all()
    assert dbs.scalars(select(Bag.status)).one() == "received"
    assert [(a.action, a.before["status"], a.after["status"]) for a in audit_rows(dbs)] == [
        ("receipt_fail", "arrived", "receipt_failed"),
        ("receive", "receipt_failed", "received"),
    ]
    # An event the bag's status does not offer on the page is refused, even when legal.
    post(client, "/bags/000001/events", "/bags/000001", event="receipt_fail", cause="x")
    assert "BAD_FIELD" in flashed(client, "/bags/000001")


def test_a_manual_hub_receipt_sets_the_online_time(client, dbs):
    add_bag(dbs, status="arrived", trk="LZ5")
    dbs.add(Parcel(tracking_no="LZ5", seller_id="S1", status="rts", hub="SZ"))
    dbs.commit()
    post(client, "/parcels/receipts", "/parcels", tracking_nos="LZ5\n")
    dbs.expire_all()
    parcel = dbs.get(Parcel, "LZ5")
    assert parcel.status == "received" and parcel.received_at and parcel.online_at
    (entry,) = audit_rows(dbs)
    assert entry.action == "hub_receipt" and entry.before == {"LZ5": "rts"}
    post(client, "/parcels/receipts", "/parcels", tracking_nos="NOPE")
    assert "PARCEL_NOT_FOUND" in flashed(client, "/parcels")


def test_the_queue_lists_each_kind_and_resolving_records_who_and_why(client, dbs):
    add_bag(dbs, bag_no="000001", due=now() - timedelta(hours=2))
    held = add_bag(dbs, bag_no="000002", trk="LZ2")
    lost = add_bag(dbs, bag_no="000003", trk="LZ3", status="picked_up")
    lost.picked_up_at = now() - timedelta(hours=80)
    dbs.add(Disagreement(bag_id=held.id, bag_no="000002", at=now(), code="IN_OTHER_BAG",
                         message="parcel LZ2 is also in bag 000009", tracking_no="LZ2"))  # fmt: skip
    dbs.add(
        Disagreement(
            bag_no="777777", at=now(), code="UNKNOWN_BAG", message="bag 777777 is unknown here"
        )
    )
    device = dbs.get(Device, "hh-1")
    device.status = {**device.status, "clock_off": True, "clock_skew_s": 86400}
    dbs.commit()
    page = client.get("/exceptions").text
    assert 'id="exceptions-count">5<' in page
    for text in ("Late pickup", "In transit too long", "open both", "bag 777777 is unknown here",
                 "Handheld clock off", "86400 s off"):  # fmt: skip
        assert text in page, text
    assert 'id="nav-exceptions-count">5<' in client.get("/bags").text
    assert 'id="exceptions-open">5<' in client.get("/").text

    (unknown,) = dbs.scalars(select(Disagreement).where(Disagreement.code == "UNKNOWN_BAG"))
    r = post(client, "/exceptions/resolve", "/exceptions", kind="disagreement",
             ref=str(unknown.id), why="typo on the receipt")  # fmt: skip
    assert r.status_code == 302
    dbs.expire_all()
    assert dbs.get(Disagreement, unknown.id).resolved_at is not None
    post(
        client, "/exceptions/resolve", "/exceptions", kind="late_pickup", ref="000001", why="called"
    )
    (a, b) = dbs.scalars(select(ExceptionResolution).order_by(ExceptionResolution.id))
    assert (a.kind, a.resolved_by, a.why) == ("disagreement", "admin", "typo on the receipt")
    assert (b.kind, b.ref) == ("late_pickup", "000001")
    page = client.get("/exceptions").text
    assert 'id="exceptions-count">3<' in page and "called" in page
    assert [e.action for e in audit_rows(dbs)] == ["resolve_exception"] * 2
    # Resolving what is not open (again, or never) is refused and changes nothing.
    post(client, "/exceptions/resolve", "/exceptions", kind="late_pickup", ref="000001", why="x")
    assert "NOT_OPEN" in flashed(client, "/exceptions")
    post(client, "/exceptions/resolve", "/exceptions", kind="late_pickup", ref="000001", why="")
    assert len(audit_rows(dbs)) == 2


def test_the_queue_says_what_to_do_in_chinese(client, dbs):
    add_bag(dbs, due=now() - timedelta(hours=2))
    page = client.get("/exceptions", headers={"Accept-Language": "zh-CN"}).text
    assert "超时未揽收" in page and "联系揽收公司催司机" in page


def test_bulk_labels_one_pdf_one_page_per_bag_in_its_size(client, dbs):
    add_bag(dbs, bag_no="000001", trk="LZ1").service = "milkrun"
    add_bag(dbs, bag_no="000002", trk="LZ2").service = "paid"
    dbs.commit()
    form = {"bag": ["000001", "000002"], "csrf_token": csrf_of(client.get("/bags").text)}
    r = client.post("/labels.pdf", data=form)
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    boxes = re.findall(rb"/MediaBox \[ 0 0 ([\d.]+) ([\d.]+) \]", r.data)
    sizes = [tuple(round(float(v)) for v in box) for box in boxes]
    assert sizes == [tuple(round(v) for v in labels.LABEL_SIZES[s]) for s in ("milkrun", "paid")]
    (entry,) = audit_rows(dbs)
    assert entry.action == "print_labels" and entry.after == {"bags": ["000001", "000002"]}


def test_labels_of_all_bags_closed_today(client, dbs):
    for n in (1, 2):
        bag = add_bag(dbs, bag_no=f"00000{n}", trk=f"LZ{n}")
        bag.closed_at = now() if n == 1 else now() - timedelta(days=3)
    dbs.commit()
    r = post(client, "/labels.pdf", "/bags", closed_today="1")
    assert r.status_code == 200 and len(re.findall(rb"/Type /Page\b", r.data)) == 1
    assert post(client, "/labels.pdf", "/bags").status_code == 302  # nothing chosen


def test_an_admin_sets_up_a_seller_and_sees_the_coverage(client, dbs):
    post(client, "/setup/accounts", "/setup/sellers", name="Acme")
    post(
        client,
        "/setup/stores",
        "/setup/sellers",
        seller_id="S9",
        seller_name="Shop",
        account_id="1",
    )
    post(client, "/setup/addresses", "/setup/sellers", account_id="1", kind="pickup",
         service="paid", warehouse_name="WH1", province="广东省", city="深圳市", district="南山区",
         street="科技园 1 号")  # fmt: skip
    assert "Milkrun covers this address: yes; paid pickup: yes." in flashed(
        client, "/setup/sellers"
    )
    page = client.get("/setup/sellers").text
    assert "Coverage and eligibility" in page and "WH1" in page and "S9" in page
    assert [e.action for e in audit_rows(dbs)] == ["add_account", "add_store", "add_address"]


def test_an_admin_adds_couriers_and_users_and_changes_roles(app, client, dbs):
    post(client, "/setup/couriers", "/setup/couriers", id="drv-9", name="李师傅", pin="123456")
    assert "drv-9" in client.get("/setup/couriers").text
    post(client, "/users", "/users", username="disp", password="password-9", role="dispatcher")
    disp = app.test_client()
    assert log_in(disp, "disp", "password-9").status_code == 302
    assert "Audit log" in disp.get("/").text and "/users" not in disp.get("/").text
    user_id = re.search(r'action="/users/(\d+)/role" class="inline" id="role-disp"',
                        client.get("/users").text).group(1)  # fmt: skip
    post(client, f"/users/{user_id}/role", "/users", role="viewer")
    assert disp.get("/").status_code == 302  # the new role starts with a new login
    actions = [(e.action, e.before, e.after) for e in audit_rows(dbs)]
    assert actions[-1] == ("set_role", {"role": "dispatcher"}, {"role": "viewer"})
    assert "123456" not in str(actions)  # the PIN is never logged
    own = re.search(r'action="/users/(\d+)/role" class="inline" id="role-admin"',
                    client.get("/users").text).group(1)  # fmt: skip
    post(client, f"/users/{own}/role", "/users", role="viewer")
    assert "OWN_ROLE" in flashed(client, "/users")


def test_receipt_links_use_the_address_the_gateway_is_served_on(app, dbs):
    add_bag(dbs)
    handover_id = add_handover(dbs, "000001")
    dbs.commit()
    app.config["SERVER_NAME"] = "10.0.0.7:8123"  # the test client's host: not 127.0.0.1:5000
    office = app.test_client()
    log_in(office)

    def printed() -> list[str]:
        page = office.get(f"/handovers/{handover_id}/receipt").text
        return re.findall(r'<p class="url">([^<]+)</p>', page)

    urls = printed()
    assert len(urls) == 3
    assert all(u.startswith("http://10.0.0.7:8123/receipts/") for u in urls), urls
    app.config["PUBLIC_URL"] = "https://gw.example"
    assert all(u.startswith("https://gw.example/receipts/") for u in printed())


def test_the_count_stops_at_its_cap_and_says_so(client, dbs, monkeypatch):
    monkeypatch.setattr(exceptions, "COUNT_CAP", 2)
    for n in (1, 2, 3):
        add_bag(dbs, bag_no=f"00000{n}", trk=f"LZ{n}", due=now() - timedelta(hours=1))
    assert 'id="nav-exceptions-count">2+<' in client.get("/bags").text
    assert len(re.findall(r'class="card exception"', client.get("/exceptions").text)) == 3


def test_the_receipt_shows_the_pickup_time_with_its_zone(client, dbs):
    bag = add_bag(dbs)
    bag.picked_up_at = datetime(2026, 12, 6, 2, 5, tzinfo=UTC)  # 10:05 in China
    handover_id = add_handover(dbs, "000001")
    dbs.commit()
    page = client.get(f"/handovers/{handover_id}/receipt").text
    times = re.findall(r'<dd class="pickup-time">([^<]+)</dd>', page)
    assert times == ["2026-12-06 10:05 (UTC+08:00)"] * 3
