"""Every firmware module compiles for the ESP32, and the device's HMAC matches Python's."""

import hashlib
import hmac
import re
import subprocess

from devkit import bundle


def test_every_firmware_module_compiles_for_the_esp32(tmp_path):
    for board in ("esp32", "sim"):
        out = tmp_path / board
        bundle.build(out, target="esp32", board=board)
        for src in bundle.sources(board):
            rel = bundle.bundle_path(src)
            if rel.name == "main.py" and rel.parent.name == "":
                continue  # stays source on the device
            if rel.name == "__init__.py" and not src.stat().st_size:
                assert not (out / rel).with_suffix(".mpy").exists(), rel
                continue  # a folder is a package without it
            mpy = (out / rel).with_suffix(".mpy")
            assert mpy.exists(), rel
            assert mpy.read_bytes()[:2] == b"M\x06", rel  # .mpy version 6: MicroPython 1.22+


def test_mpy_cross_accepts_the_firmware_at_optimisation_level_3(tmp_path):
    # -O3 drops asserts: the firmware must not rely on them (house style 7).
    for src in bundle.sources("esp32"):
        subprocess.run(
            [
                bundle.mpy_cross(),
                "-march=xtensawin",
                "-O3",
                "-o",
                str(tmp_path / "x.mpy"),
                str(src),
            ],
            check=True,
        )


def test_device_hmac_matches_python(run_mpy):
    key = bytes(range(70))  # longer than a block: hashed first (RFC 2104)
    msg = "bagscan-handover-v1|2026-08-08|S1|店|1|BS0000000001|D1|王".encode()
    code = (
        "from app import signing\n"
        f"print(signing.sign({key[:32]!r}, {msg!r}))\n"
        f"print(signing.sign({key!r}, {msg!r}))\n"
    )
    out = run_mpy(code).stdout.split()
    assert out[0] == hmac.new(key[:32], msg, hashlib.sha256).hexdigest()
    assert out[1] == hmac.new(key, msg, hashlib.sha256).hexdigest()


def test_every_refusal_code_has_a_screen_text_that_fits():
    from firmware.app import ui
    from protocol import rules

    for code in rules.CODES:
        text = ui.reason(code)
        assert text != code and 0 < len(text) <= 16, code


def test_every_refusal_code_has_its_chinese_screen_text():
    # Chinese is the handhelds' default (docs/firmware.md, "Languages"): a code without a line
    # in firmware/lang/zh.txt would show its English text on a Chinese screen.
    from devkit import glyphs
    from firmware.app import ui
    from protocol import rules

    catalog = glyphs.catalog()
    missing = [
        c for c in rules.CODES if re.sub(r"[0-9]+", glyphs.NUMBER, ui.reason(c)) not in catalog
    ]
    assert missing == []
