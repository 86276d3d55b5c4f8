"""Acting on the admin page in headless Chromium (issue 17): a dispatcher resolves an exception,
cancels a bag (and is told why not after pickup), marks a receipt failed and retries it, records
a hub receipt and prints labels; a viewer is refused; a POST without its CSRF token is refused;
an admin sets up a courier; the bag list, a bag and the queue fit a 390 px phone.

Screenshots go to test-artifacts/admin/ (gitignored).
"""

import os
import re
from datetime import timedelta

import pytest
from adminpage import now
from sqlalchemy.orm import Session

from gateway import db
from gateway.models import Bag, BagParcel, Device, Disagreement, Handover, Parcel, Record
from gateway.web import auth

pytest.importorskip("playwright")
from playwright.sync_api import expect, sync_playwright  # noqa: E402
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="apt-get install chromium")
PASSWORD = "password-1"
PHONE = {"width": 390, "height": 844}


def seed(db_url: str) -> None:
    """Users of each role, and one bag in each state the actions start from."""
    engine = db.make_engine(db_url)
    with Session(engine) as s, s.begin():
        for role in auth.ROLES:
            auth.ensure_user(s, role, PASSWORD, role)
        s.add(Device(id="hh-1", password_hash="x", bag_range_lo=1, bag_range_hi=1000,
                     applied_seq=1, online=False, status={"backlog": 900}))  # fmt: skip
        s.flush()
        t = now() - timedelta(hours=30)
        for no, status, trk in [
            ("100001", "awaiting_pickup", "LZ100000001CN"),
            ("100002", "picked_up", "LZ100000002CN"),
            ("100003", "arrived", "LZ100000003CN"),
        ]:
            bag = Bag(bag_no=no, device_id="hh-1", status=status, parcel_count=1, weight_g=900,
                      opened_at=t, closed_at=now(), created_at=t, service="milkrun",
                      pickup_due_at=now() - timedelta(hours=1), seller_id="S1")  # fmt: skip
            s.add(bag)
            s.flush()
            s.add(BagParcel(bag_id=bag.id, tracking_no=trk, added_at=t))
            s.add(Parcel(tracking_no=trk, seller_id="S1", status="rts", hub="SZ"))
        # A handover that counted a bag the gateway does not know, as the registry keeps it
        # (its record applied: applied_seq 1).
        rec = Record(device_id="hh-1", seq=1, boot=1, kind="handover", ticks=0, wall=0,
                     clock_ok=True, body={"hid": "h1"}, occurred_at=now())  # fmt: skip
        s.add(rec)
        s.flush()
        s.add(Handover(device_id="hh-1", device_handover_id="h1", record_id=rec.id,
                       driver_id="drv-7", seller_id="S1", pickup_date=now().date(),
                       bag_numbers=["777777"], bag_count=1, signature="ab" * 32,
                       signature_ok=False, at=now()))  # fmt: skip
        s.add(Disagreement(bag_no="777777", at=now(), code="UNKNOWN_BAG", record_id=rec.id,
                           message="handover h1: bag 777777 is unknown here"))  # fmt: skip
    engine.dispose()


@pytest.fixture
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_as(browser, url: str, role: str, viewport=None):
    page = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url + "/login")
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    expect(page.locator("h1")).to_contain_text("Dashboard")
    return page


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_dispatcher_acts_and_the_audit_log_shows_it(gateway, browser):
    seed(gateway.db_url)
    url = gateway.url
    page = open_as(browser, url, "dispatcher")
    # Bag 100001 late for pickup, the handover's unknown bag, the handheld's backlog: three
    # open exceptions, counted on the dashboard and in the menu.
    expect(page.locator("#exceptions-open")).to_have_text("3")
    expect(page.locator("#nav-exceptions-count")).to_have_text("3")

    page.click("#nav-exceptions")
    card = page.locator("#exceptions .exception", has_text="777777")
    expect(card).to_contain_text("check the bag number on the receipt")
    shot(page, "20-exceptions")
    card.locator("input[name=why]").fill("typo on the paper receipt")
    card.locator("button").click()
    expect(page.locator(".flash.ok")).to_contain_text("Exception resolved.")
    expect(page.locator("#exceptions-count")).to_have_text("2")
    expect(page.locator("#resolved")).to_contain_text("typo on the paper receipt")

    # Cancel a waiting bag; a picked-up one is refused with the manual's reason.
    page.goto(f"{url}/bags/100001")
    page.fill("#cancel-form input[name=reason]", "seller asked")
    page.click("#cancel")
    expect(page.locator(".flash.ok")).to_contain_text("Bag cancelled.")
    expect(page.locator("h1 small")).to_have_text("cancelled")
    page.goto(f"{url}/bags/100002")
    page.click("#cancel")
    expect(page.locator(".flash.error")).to_contain_text("CANCEL_AFTER_PICKUP")
    expect(page.locator(".flash.error")).to_contain_text("manual FAQ 8")
    expect(page.locator("h1 small")).to_have_text("picked up")

    # The hub could not sign: receipt failed, then retried.
    page.goto(f"{url}/bags/100003")
    page.locator("form", has=page.locator("#event-receipt_fail")).locator("input[name=cause]").fill(
        "label torn"
    )
    page.click("#event-receipt_fail")
    expect(page.locator("h1 small")).to_have_text("receipt failed")
    page.locator("form", has=page.locator("#event-receive")).locator("input[name=cause]").fill(
        "relabelled"
    )
    page.click("#event-receive")
    expect(page.locator("h1 small")).to_have_text("received")
    expect(page.locator("#history")).to_contain_text("Receipt failed: label torn")
    shot(page, "21-bag-after-actions")

    # A manual hub receipt.
    page.goto(f"{url}/parcels")
    page.fill("#hub-receipt textarea", "LZ100000003CN")
    page.click("#hub-receipt button")
    expect(page.locator(".flash.ok")).to_contain_text("Hub receipt recorded for 1 parcels.")
    expect(page.locator("#parcel-status")).to_have_text("received at the hub")

    # Labels of two chosen bags in one PDF (it opens in a new tab).
    page.goto(f"{url}/bags")
    page.check("input[name=bag][value='100001']")
    page.check("input[name=bag][value='100003']")
    with page.context.expect_event("response", lambda r: "/labels.pdf" in r.url) as got:
        page.click("#print-chosen")
    pdf = got.value
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    # Chromium shows the PDF in its viewer; the file itself, as the other button asks for it:
    token = page.locator("#labels input[name=csrf_token]").get_attribute("value")
    today = page.request.post(f"{url}/labels.pdf", form={"csrf_token": token, "closed_today": "1"})
    assert today.ok and len(re.findall(rb"/Type /Page\b", today.body())) == 3

    page.goto(f"{url}/audit")
    audit = page.locator("#audit")
    for text in ("Resolve", "Cancel bag", "Mark receipt failed", "Retry receipt",
                 "Manual hub receipt", "Print labels", "awaiting_pickup"):  # fmt: skip
        expect(audit).to_contain_text(text)
    expect(audit).not_to_contain_text("CANCEL_AFTER_PICKUP")  # a refused action changes nothing
    shot(page, "22-audit")
    assert page.errors == []


def test_a_viewer_is_refused_and_a_post_needs_its_csrf_token(gateway, browser):
    seed(gateway.db_url)
    url = gateway.url
    viewer = open_as(browser, url, "viewer")
    viewer.goto(f"{url}/bags/100001")
    expect(viewer.locator("#bag-actions")).to_have_count(0)  # no buttons for a viewer ...
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = viewer.request.post(f"{url}/bags/100001/cancel", form={"csrf_token": token})
    assert forged.status == 403  # ... and the server refuses the action anyway
    assert viewer.request.get(f"{url}/users").status == 403
    expect(viewer.locator("h1 small")).to_have_text("awaiting pickup")

    dispatcher = open_as(browser, url, "dispatcher")
    no_token = dispatcher.request.post(f"{url}/bags/100001/cancel", form={"reason": "x"})
    assert no_token.status == 400 and "CSRF" in no_token.text()
    dispatcher.goto(f"{url}/bags/100001")
    expect(dispatcher.locator("h1 small")).to_have_text("awaiting pickup")
    assert dispatcher.request.get(f"{url}/setup/couriers").status == 403

    admin = open_as(browser, url, "admin")
    admin.goto(f"{url}/setup/couriers")
    admin.fill("#add-courier input[name=id]", "drv-8")
    admin.fill("#add-courier input[name=name]", "王师傅")
    admin.fill("#add-courier input[name=pin]", "2468")
    admin.click("#add-courier button")
    expect(admin.locator("#couriers")).to_contain_text("王师傅")
    admin.goto(f"{url}/audit")
    expect(admin.locator("#audit")).to_contain_text("Add courier")
    expect(admin.locator("#audit")).not_to_contain_text("2468")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_bag_list_bag_and_queue_fit_a_phone(gateway, browser, lang):
    seed(gateway.db_url)
    page = open_as(browser, gateway.url, "dispatcher", viewport=PHONE)
    if lang == "zh":
        page.click("#lang-zh")
    for path in ("/bags", "/bags/100001", "/exceptions"):
        page.goto(gateway.url + path)
        shot(page, f"23-phone-{lang}{path.replace('/', '-')}")
        # Nothing wider than the screen: wide tables scroll inside their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        for button in page.locator("main button").all():
            box = button.bounding_box()
            assert box is None or box["x"] + box["width"] <= PHONE["width"], path
    # The actions are still there and work at that width.
    page.goto(gateway.url + "/exceptions")
    card = page.locator("#exceptions .exception").first
    card.locator("input[name=why]").fill("checked on the phone")
    card.locator("button").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    assert page.errors == []
