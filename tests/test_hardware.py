"""The pin map, the ESP32 board and the wiring diagram agree, and the pins are safe."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PINMAP = ROOT / "hw" / "pinmap.json"
BOARD = ROOT / "firmware" / "hal" / "esp32.py"
SVG = ROOT / "hw" / "wiring.svg"
WIRING = ROOT / "tools" / "wiring"

# ESP32 technical reference / WROOM-32E datasheet.
FLASH_PINS = set(range(6, 12))  # wired to the module's SPI flash
STRAPPING_PINS = {0, 2, 5, 12, 15}  # sampled at reset: boot mode, flash voltage, boot log
INPUT_ONLY = set(range(34, 40))  # no output driver, no internal pull-up/down
ESP32_GPIOS = set(range(0, 40)) - {20, 24, 28, 29, 30, 31}
ADC1_PINS = set(range(32, 40))  # ADC2 is unusable while Wi-Fi is on


@pytest.fixture(scope="module")
def pinmap():
    return json.loads(PINMAP.read_text())


def all_pins(pinmap):
    return [
        (group, name, value)
        for group, fields in pinmap.items()
        if isinstance(fields, dict)
        for name, value in fields.items()
        if isinstance(value, dict) and "gpio" in value
    ]


def test_the_map_has_every_part_the_handheld_needs(pinmap):
    named = {(g, n) for g, n, _ in all_pins(pinmap)}
    assert named >= {
        ("scanner", "tx"),
        ("scanner", "rx"),
        ("hx711", "dout"),
        ("hx711", "sck"),
        ("i2c", "sda"),
        ("i2c", "scl"),
        ("buzzer", "pwm"),
        ("led", "pin"),
        ("battery", "adc"),
    }
    assert set(pinmap["keys"]) == {"ok", "cancel", "mode", "up", "down"}
    assert pinmap["scanner"]["uart"] == 2 and pinmap["scanner"]["baud"] == 9600
    assert pinmap["i2c"]["oled_addr"] == 0x3C
    assert pinmap["i2c"]["freq"] <= 400_000  # SSD1306 fast-mode limit


def test_every_pin_is_a_real_gpio_used_once(pinmap):
    gpios = [p["gpio"] for _, _, p in all_pins(pinmap)]
    assert len(gpios) == len(set(gpios)), "a GPIO is used twice"
    assert set(gpios) <= ESP32_GPIOS


def test_no_pin_is_a_flash_or_strapping_pin(pinmap):
    for group, name, pin in all_pins(pinmap):
        assert pin["gpio"] not in FLASH_PINS, f"{group}.{name} is a flash pin"
        assert pin["gpio"] not in STRAPPING_PINS, f"{group}.{name} is a strapping pin"


def test_input_only_pins_are_only_inputs_with_external_pull_ups(pinmap):
    for group, name, pin in all_pins(pinmap):
        assert pin["dir"] in ("in", "out", "io")
        if pin["gpio"] in INPUT_ONLY:
            assert pin["dir"] == "in", f"{group}.{name} drives GPIO{pin['gpio']}, input-only"
            assert pin.get("pull") != "up", f"{group}.{name}: GPIO34-39 have no internal pull"


def test_keys_are_inputs_with_a_pull_up(pinmap):
    for name, pin in pinmap["keys"].items():
        assert pin["dir"] == "in", name
        assert pin.get("pull") in ("up", "external"), name


def test_battery_is_read_on_adc1(pinmap):
    assert pinmap["battery"]["adc"]["gpio"] in ADC1_PINS
    ratio = (pinmap["battery"]["r_top"] + pinmap["battery"]["r_bottom"]) / pinmap["battery"][
        "r_bottom"
    ]
    # A full cell (4.2 V) must stay inside the 11 dB ADC range (~3.1 V).
    assert 4200 / ratio < 3100


def test_every_pin_appears_in_the_wiring_diagram(pinmap):
    svg = SVG.read_text()
    for group, name, pin in all_pins(pinmap):
        assert re.search(rf"GPIO{pin['gpio']}\b", svg), f"GPIO{pin['gpio']} missing"
        assert f"{group}.{name}" in svg


def test_wiring_diagram_is_regenerated_identically(tmp_path):
    out = tmp_path / "wiring.svg"
    subprocess.run([sys.executable, str(WIRING), "--out", str(out)], check=True)
    assert out.read_bytes() == SVG.read_bytes(), "hw/wiring.svg is stale: run tools/wiring"
    check = subprocess.run([str(WIRING), "--check"], capture_output=True)
    assert check.returncode == 0
    assert WIRING.read_text().startswith("#!/usr/bin/env python3")


def test_board_reads_only_names_that_exist_in_the_map(pinmap):
    source = BOARD.read_text()
    used_pins = set(re.findall(r'_pin\(pm, "(\w+)", "(\w+)"\)', source))
    fields = set(re.findall(r'pm\["(\w+)"\]\["(\w+)"\]', source))
    groups = set(re.findall(r'pm\["(\w+)"\]', source))
    whole_groups = set(re.findall(r'pm\["(\w+)"\]\.items\(\)', source))
    assert used_pins and fields and whole_groups
    for group in groups:
        assert group in pinmap, f"esp32.py reads pm[{group!r}], not in the map"
    for group, name in used_pins:
        assert "gpio" in pinmap[group][name], f"{group}.{name} is not a pin"
    for group, name in fields:
        assert name in pinmap[group], f"esp32.py reads {group}.{name}, not in the map"
    # ... and every pin in the map is wired up by the board.
    for group, name, _ in all_pins(pinmap):
        assert (group, name) in used_pins or group in whole_groups, f"{group}.{name} unused"


def test_board_has_no_hard_coded_pin_numbers(pinmap):
    source = BOARD.read_text()
    assert not re.search(r"\b(Pin|UART|I2C|SoftI2C|PWM|ADC)\(\s*\d", source)
    gpios = {p["gpio"] for _, _, p in all_pins(pinmap)}
    numbers = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and type(node.value) is int
    }
    assert not numbers & gpios, f"pin numbers typed into esp32.py: {numbers & gpios}"
    assert 'PINMAP = "/pinmap.json"' in source  # bundled at the filesystem root


def test_only_the_esp32_board_imports_machine_network_esp32():
    pattern = re.compile(r"^\s*(import|from)\s+(machine|network|esp32)\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "firmware").rglob("*.py")
        if "typings" not in path.parts and path != BOARD and pattern.search(path.read_text())
    ]
    assert offenders == []
