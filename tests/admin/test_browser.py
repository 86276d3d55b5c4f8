"""The admin page in headless Chromium against a real gateway and a simulated handheld.

Screenshots of every page go to test-artifacts/admin/ (gitignored).
"""

import os
import re
import subprocess
from pathlib import Path

import adminpage
import pytest
from adminpage import ADMIN_PASSWORD
from sqlalchemy.orm import Session

from gateway import db

pytest.importorskip("playwright")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
EVIL = '"><script>alert(1)</script>'

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="apt-get install chromium")


@pytest.fixture
def browser_page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.dialogs, page.errors = dialogs, errors
        yield page
        browser.close()
    assert dialogs == [], "a script ran: an alert() fired"
    assert errors == []


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, url: str) -> None:
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    shot(page, "01-login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("#login")
    expect(page.locator("h1")).to_contain_text("Dashboard")


def add_handover(gw, bag_no: str) -> int:
    engine = db.make_engine(gw.db_url)
    with Session(engine) as s, s.begin():
        handover_id = adminpage.add_handover(s, bag_no)
    engine.dispose()
    return handover_id


def qr_codes_of(pdf: bytes, tmp: Path) -> list[str]:
    """What a phone reads off the printed PDF: its QR codes, decoded by pdftoppm and zbarimg
    (installed by tools/test)."""
    (tmp / "receipt.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "200", "-png", "receipt.pdf", "page"], cwd=tmp, check=True)
    (page,) = tmp.glob("page*.png")
    out = subprocess.run(["zbarimg", "-q", "--raw", page], capture_output=True, text=True)
    return out.stdout.split()


def test_admin_page_in_a_browser(admin_gateway, handhelds, browser_page, tmp_path):
    gw, page = admin_gateway, browser_page
    log_in(page, gw.url)
    page.evaluate("window.__noReload = true")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=10_000)
    shot(page, "02-dashboard-empty")

    # A bag closed on a handheld appears on the open dashboard, without a reload.
    hh = handhelds(gw, "hh-browser").control
    for trk in ("LZ700000001CN", EVIL):
        assert hh.scan(trk)["beep"] == "ok"
    hh.weigh(2300)
    hh.key("ok")
    bag_no = hh.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]
    expect(page.locator("#recent")).to_contain_text(bag_no, timeout=30_000)
    assert page.evaluate("window.__noReload") is True
    expect(page.locator("#devices-online")).to_have_text("1", timeout=15_000)
    shot(page, "03-dashboard-live")

    # The script barcode is text on every page that shows it.
    page.goto(f"{gw.url}/bags")
    expect(page.locator("#bags")).to_contain_text(bag_no)
    shot(page, "04-bags")
    page.fill("input[name=q]", EVIL)
    page.click("#bag-filter button[type=submit]")
    expect(page.locator("#bags")).to_contain_text(bag_no)
    shot(page, "05-bags-search-script-barcode")
    page.click(f"text={bag_no}")
    expect(page.locator("#parcels")).to_contain_text(EVIL)
    expect(page.locator("#timeline")).to_contain_text(EVIL)
    shot(page, "06-bag-detail")
    page.click(f"#parcels >> text={EVIL}")
    expect(page.locator("#trk")).to_have_text(EVIL)
    expect(page.locator("#parcel")).to_contain_text(bag_no)
    shot(page, "07-parcel-lookup")
    label = page.request.get(f"{gw.url}/bags/{bag_no}/label.pdf")
    assert label.ok and label.body().startswith(b"%PDF")

    page.goto(f"{gw.url}/devices")
    expect(page.locator("#devices")).to_contain_text("hh-browser")
    page.fill("input[name=device_id]", "hh-spare")
    page.click("#provision button")
    expect(page.locator("#device-password")).not_to_be_empty()
    shot(page, "08-devices-provisioned")

    # Handovers: list, detail, the printable receipt and its PDF, the QR's page.
    handover_id = add_handover(gw, bag_no)
    page.goto(f"{gw.url}/handovers")
    expect(page.locator("#handovers")).to_contain_text("drv-7")
    shot(page, "09-handovers")
    page.goto(f"{gw.url}/handovers/{handover_id}")
    expect(page.locator("#handover-bags")).to_contain_text(bag_no)
    shot(page, "10-handover")
    page.click("#print")
    expect(page.locator(".copy")).to_have_count(3)
    expect(page.locator("#copy-seller")).to_contain_text('Shop <b>"&')
    expect(page.locator("img.qr")).to_have_count(3)
    # Every QR code image loads (polled: a busy machine may still be serving them; the
    # page's CSP forbids the string evaluation wait_for_function would use).
    for _ in range(150):
        loaded = [
            img.evaluate("i => i.complete && i.naturalWidth > 0")
            for img in page.locator("img.qr").all()
        ]
        if all(loaded):
            break
        page.wait_for_timeout(100)
    assert all(loaded), loaded
    shot(page, "11-receipt")
    page.emulate_media(media="print")
    printed = page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
    (ARTIFACTS / "11-receipt-printed.pdf").write_bytes(printed)
    # Three copies on one A4 page.
    assert len(re.findall(rb"/Type\s*/Page\b", printed)) == 1
    page.emulate_media(media="screen")
    verify_url = page.locator("#copy-driver .url").inner_text()
    printed_urls = page.locator(".copy .url").all_inner_texts()
    # The QR codes point where the gateway is served, with no PUBLIC_URL set (issue 17).
    assert verify_url.startswith(gw.url + "/receipts/"), verify_url
    page.goto(verify_url)
    expect(page.locator("#verified")).to_be_visible()
    shot(page, "12-receipt-verified")
    page.goto(verify_url[:-4] + "0000")
    expect(page.locator("#not-verified")).to_be_visible()

    # The receipt PDF is this handover's receipt: its three QR codes are the page's three links.
    pdf = page.request.get(f"{gw.url}/handovers/{handover_id}/receipt.pdf")
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf", pdf.status
    assert len(printed_urls) == 3
    assert sorted(qr_codes_of(pdf.body(), tmp_path)) == sorted(printed_urls)

    # Switch language.
    page.goto(f"{gw.url}/")
    page.click("#lang-zh")
    expect(page.locator("h1")).to_contain_text("总览")
    expect(page.locator("#recent")).to_contain_text("待司机揽收", timeout=10_000)
    shot(page, "13-dashboard-zh")
    page.goto(f"{gw.url}/bags/{bag_no}")
    expect(page.locator("h1")).to_contain_text("大包")
    shot(page, "14-bag-zh")
    page.click("#lang-en")
    expect(page.locator("h1")).to_contain_text("Bag")

    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login"))
    shot(page, "15-logged-out")
    page.goto(f"{gw.url}/bags")
    expect(page).to_have_url(re.compile(r"/login"))
