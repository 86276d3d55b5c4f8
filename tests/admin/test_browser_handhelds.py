"""In headless Chromium: the devices page flags a handheld behind on its config (issue 16); a
handover's page, its printed receipt and its PDF count the bags handed over, list the refused
ones and show the pickup time (issues 15, 17).

Screenshots go to test-artifacts/admin/ (gitignored).
"""

import os
import re
import subprocess
from datetime import timedelta

import pytest
import test_browser_actions
from sqlalchemy.orm import Session
from test_browser_actions import PASSWORD, open_as, shot
from test_handhelds_and_handovers import add_device, add_handover_with_refusals

from gateway import db
from gateway.web import auth

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402
from test_browser import CHROMIUM  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="apt-get install chromium")
browser = test_browser_actions.browser  # the fixture: headless Chromium


def seed(db_url: str) -> int:
    engine = db.make_engine(db_url)
    with Session(engine) as s:
        auth.ensure_user(s, "viewer", PASSWORD, "viewer")
        add_device(s, "hh-late", True, 7, 9, timedelta(minutes=6), n=52000)
        add_device(s, "hh-ok", True, 9, 9, n=52000)
        handover_id = add_handover_with_refusals(s)
    engine.dispose()
    return handover_id


def test_devices_page_flags_a_handheld_behind_and_receipts_count_the_bags(
    gateway, browser, tmp_path
):
    handover_id = seed(gateway.db_url)
    url = gateway.url
    page = open_as(browser, url, "viewer")

    page.goto(f"{url}/devices")
    shot(page, "30-devices-config")
    late = page.locator("#devices tr", has_text="hh-late")
    expect(late.locator("#behind-hh-late")).to_be_visible()
    # The gateway's config feed keeps resending to it, so "sent" may have moved on from 9.
    expect(late.locator("#behind-hh-late")).to_contain_text(re.compile(r"Behind \(sent \d+, since"))
    expect(late).to_contain_text("52000")
    expect(page.locator("#devices tr", has_text="hh-ok").locator(".behind")).to_have_count(0)
    page.click("#lang-zh")
    expect(page.locator("#behind-hh-late")).to_contain_text(
        re.compile(r"配置落后 \(已发送 \d+, 自")
    )

    page.click("#lang-en")
    page.goto(f"{url}/handovers/{handover_id}")
    shot(page, "31-handover-refused")
    expect(page.locator("h2", has_text="Bags (1)")).to_be_visible()
    expect(page.locator("#unknown-bags")).to_contain_text("999999")
    expect(page.locator("#refused-bags tr.unknown-bag")).to_contain_text("Unknown to this gateway")
    expect(page.locator("#handover-bags")).not_to_contain_text("000002")

    page.click("#print")
    shot(page, "32-receipt-refused")
    seller = page.locator("#copy-seller")
    expect(seller.locator(".pickup-time")).to_have_text("2026-12-06 10:05 (UTC+08:00)")
    expect(seller.locator(".bag-count")).to_have_text("1 (签收 signed 3, 未交接 refused 2)")
    expect(seller.locator(".refused")).to_contain_text("999999 (bag 999999 is unknown here)")

    pdf = page.request.get(f"{url}/handovers/{handover_id}/receipt.pdf")
    assert pdf.status == 200
    (tmp_path / "r.pdf").write_bytes(pdf.body())
    subprocess.run(["pdftotext", "-raw", "r.pdf", "r.txt"], cwd=tmp_path, check=True)
    text = (tmp_path / "r.txt").read_text()
    assert text.count("揽收时间 Pickup time 2026-12-06 10:05 (UTC+08:00)") == 3
    assert page.errors == []
