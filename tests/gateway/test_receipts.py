"""Handover receipts: the driver's signature, three verifiable copies, the printed A4 page."""

import base64
import dataclasses
import re
import shutil
import subprocess
import zlib
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.domain.receipts import (
    COPIES,
    HandoverFields,
    Receipt,
    altered,
    handover_message,
    qr_matrix,
    qr_png,
    qr_svg,
    receipt_pdf,
    sign_handover,
    verification_url,
    verify,
    verify_driver_signature,
)

DRIVER_KEY = bytes(range(32))
SECRET = b"gateway-secret-for-tests-0123456"
BASE = "https://gw.example/"
FIELDS = HandoverFields(
    pickup_date=date(2026, 8, 8),
    seller_id="1000123",
    seller_name="深圳小商店",
    bag_numbers=("BG2026000123", "BG2026000124", "BG2026000125"),
    driver_id="D042",
    driver_name="王师傅",
)
RECEIPT = Receipt(FIELDS, sign_handover(FIELDS, DRIVER_KEY))


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def test_the_canonical_message_is_pinned():
    # The handheld builds these exact bytes; changing them breaks every driver's signature.
    assert (
        handover_message(FIELDS)
        == (
            "bagscan-handover-v1|2026-08-08|1000123|深圳小商店|3|"
            "BG2026000123,BG2026000124,BG2026000125|D042|王师傅"
        ).encode()
    )


def test_bag_order_does_not_change_the_message():
    shuffled = dataclasses.replace(FIELDS, bag_numbers=tuple(reversed(FIELDS.bag_numbers)))
    assert handover_message(shuffled) == handover_message(FIELDS)


def test_separators_inside_fields_cannot_forge_another_receipt():
    a = dataclasses.replace(FIELDS, seller_id="1|x", seller_name="y")
    b = dataclasses.replace(FIELDS, seller_id="1", seller_name="x|y")
    c = dataclasses.replace(FIELDS, bag_numbers=("A,B",))
    d = dataclasses.replace(FIELDS, bag_numbers=("A", "B"))
    assert handover_message(a) != handover_message(b)
    assert handover_message(c) != handover_message(d)


def test_the_driver_signature_verifies_with_the_drivers_key_only():
    assert verify_driver_signature(FIELDS, RECEIPT.driver_signature, DRIVER_KEY)
    assert not verify_driver_signature(FIELDS, RECEIPT.driver_signature, b"another driver")
    fewer = dataclasses.replace(FIELDS, bag_numbers=FIELDS.bag_numbers[:2])
    assert not verify_driver_signature(fewer, RECEIPT.driver_signature, DRIVER_KEY)


MPY_SIGNER = r"""
import hashlib, binascii

def esc(s):
    return s.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,")

def hmac_sha256(key, msg):
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + msg).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()

def sign(key, day, seller_id, seller_name, bags, driver_id, driver_name):
    bags = sorted(bags)
    parts = ["bagscan-handover-v1", day, esc(seller_id), esc(seller_name), str(len(bags)),
             ",".join(esc(b) for b in bags), esc(driver_id), esc(driver_name)]
    return binascii.hexlify(hmac_sha256(key, "|".join(parts).encode())).decode()
"""


@pytest.mark.parametrize("seller_name", ["深圳小商店", "A|B,C\\D"])
def test_micropython_reproduces_the_driver_signature(run_mpy, seller_name):
    # What the handheld does: str.replace, "|".join, UTF-8, HMAC from two sha256 passes.
    fields = dataclasses.replace(FIELDS, seller_name=seller_name)
    call = (
        f"print(sign({DRIVER_KEY!r}, {fields.pickup_date.isoformat()!r}, {fields.seller_id!r}, "
        f"{fields.seller_name!r}, {list(fields.bag_numbers)!r}, {fields.driver_id!r}, "
        f"{fields.driver_name!r}))"
    )
    assert run_mpy(MPY_SIGNER + call).stdout.strip() == sign_handover(fields, DRIVER_KEY)


def test_three_copies_each_with_its_own_url_and_token():
    urls = [verification_url(RECEIPT, copy, SECRET, BASE) for copy in COPIES]
    assert COPIES == ("seller", "driver", "audit")
    assert len(set(urls)) == 3
    for copy, url in zip(COPIES, urls, strict=True):
        parts = urlsplit(url)
        assert parts.path == f"/receipts/{RECEIPT.receipt_id}/{copy}"
        assert verify(RECEIPT, copy, token_of(url), SECRET)


def test_a_token_is_valid_only_for_its_own_copy_and_secret():
    seller_token = token_of(verification_url(RECEIPT, "seller", SECRET, BASE))
    assert not verify(RECEIPT, "driver", seller_token, SECRET)
    assert not verify(RECEIPT, "audit", seller_token, SECRET)
    assert not verify(RECEIPT, "seller", seller_token, b"another gateway")
    assert not verify(RECEIPT, "forged", seller_token, SECRET)
    assert not verify(RECEIPT, "seller", "0" * 32, SECRET)


ALTERATIONS = [
    {"pickup_date": date(2026, 8, 9)},
    {"seller_id": "1000124"},
    {"seller_name": "深圳大商店"},
    {"bag_numbers": FIELDS.bag_numbers[:2]},  # one bag fewer
    {"bag_numbers": FIELDS.bag_numbers + ("BG2026000126",)},  # one bag more
    {"bag_numbers": ("BG2026000123", "BG2026000124", "BG2026000999")},  # one swapped
    {"driver_id": "D043"},
    {"driver_name": "李师傅"},
]


@pytest.mark.parametrize("change", ALTERATIONS, ids=lambda c: next(iter(c)))
@pytest.mark.parametrize("copy", COPIES)
def test_verification_fails_when_any_field_is_altered(change, copy):
    token = token_of(verification_url(RECEIPT, copy, SECRET, BASE))
    assert verify(RECEIPT, copy, token, SECRET)
    assert not verify(altered(RECEIPT, **change), copy, token, SECRET)


@pytest.mark.parametrize("copy", COPIES)
def test_verification_fails_when_the_driver_signature_is_altered(copy):
    token = token_of(verification_url(RECEIPT, copy, SECRET, BASE))
    forged = Receipt(FIELDS, "0" * 64)
    assert not verify(forged, copy, token, SECRET)


def test_qr_codes_as_png_and_svg():
    url = verification_url(RECEIPT, "audit", SECRET, BASE)
    assert qr_png(url).startswith(b"\x89PNG\r\n\x1a\n")
    svg = qr_svg(url)
    assert b"<svg" in svg and b"<path" in svg
    matrix = qr_matrix(url)
    assert len(matrix) == len(matrix[0]) >= 21 + 8  # version 1 or more, 4-module quiet zone


def pdf_page_content(pdf: bytes) -> bytes:
    data = b""
    for m in re.finditer(rb"<<((?:(?!<<|>>).)*)>>\s*stream\r?\n", pdf, re.S):
        head, raw = m.group(1), pdf[m.end() : pdf.index(b"endstream", m.end())]
        if b"/ASCII85Decode" in head:
            data += zlib.decompress(base64.a85decode(raw.strip().removesuffix(b"~>")))
    return data


def test_the_printed_receipt_is_one_a4_page_with_three_copies_and_qr_codes():
    pdf = receipt_pdf(RECEIPT, SECRET, BASE)
    boxes = re.findall(rb"/MediaBox \[([^\]]*)\]", pdf)
    assert len(boxes) == 1
    width, height = map(float, boxes[0].split()[2:])
    assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297)
    assert b"/FontFile2" in pdf  # seller and driver names in the embedded CJK font
    content = pdf_page_content(pdf)
    for copy in COPIES:
        url = verification_url(RECEIPT, copy, SECRET, BASE)
        assert b"(" + url.encode() + b") Tj" in content
    # every copy's QR code is drawn as its dark modules
    dark = sum(
        sum(row)
        for copy in COPIES
        for row in qr_matrix(verification_url(RECEIPT, copy, SECRET, BASE))
    )
    assert content.count(b" re f") >= dark


@pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("zbarimg")),
    reason="pdftoppm (poppler-utils) and zbarimg (zbar-tools) not installed",
)
def test_a_phone_reads_the_three_qr_codes_off_the_printed_page(tmp_path):
    (tmp_path / "receipt.pdf").write_bytes(receipt_pdf(RECEIPT, SECRET, BASE))
    subprocess.run(
        ["pdftoppm", "-r", "200", "-png", "receipt.pdf", "page"], cwd=tmp_path, check=True
    )
    (page,) = tmp_path.glob("page*.png")
    out = subprocess.run(["zbarimg", "-q", "--raw", page], capture_output=True, text=True)
    assert sorted(out.stdout.split()) == sorted(
        verification_url(RECEIPT, copy, SECRET, BASE) for copy in COPIES
    )
