"""The handheld in Chinese (issue 18): every text of the catalog (firmware/lang/zh.txt), drawn by
the real firmware in MicroPython from the glyph subset on flash, fits the 128x64 panel; numbers
and names pass through as the manual's screens need them."""

import json
import re

import pytest
from test_handheld_bagging import device  # noqa: F401 - the fixture
from test_handheld_pickup import PIN, driver_entry, to_pickup

from devkit import glyphs, screen_tour
from devkit.handheld import SimHandheld
from gateway.domain.handheld_glyphs import font_file
from gateway.services.device_config import name_glyphs

# The widest numbers a screen line takes: a 3-digit count or size, a weight like 50.00.
SAMPLE_NUMBER = "888"

RENDER = r"""
import json
import framebuf
from drivers.zh_text import ZhText


class Panel(framebuf.FrameBuffer):
    def __init__(self):
        self.width, self.height = 128, 64
        super().__init__(bytearray(128 * 8), 128, 64, framebuf.MONO_VLSB)


panel = Panel()
text = ZhText("lang/text.bin", ["lang/font.bin", "names.bin"])
out = []
for lines in json.loads(open("screens.json").read()):
    shown, fits = text.show(panel, lines)
    lit = sum(panel.pixel(x, y) for x in range(128) for y in range(64))
    out.append([shown, fits, lit])
print(json.dumps(out))
"""


def render(run_mpy, tmp_path, screens, names: bytes | None = None):
    """[(lines shown, fits, lit pixels)] for each screen (a list of English lines)."""
    glyphs.build(tmp_path)
    (tmp_path / "screens.json").write_text(json.dumps(screens))
    if names is not None:
        (tmp_path / "names.bin").write_bytes(names)
    # What is drawn, not the heap (the memory test's): 72 screens' results are kept at once.
    return json.loads(run_mpy(RENDER, heap="1M").stdout)


def sample(english: str) -> str:
    return english.replace(glyphs.NUMBER, SAMPLE_NUMBER)


def test_every_catalog_text_is_drawn_in_chinese_within_the_panel(run_mpy, tmp_path):
    texts = glyphs.catalog()
    english = sorted(texts)
    results = render(run_mpy, tmp_path, [[sample(e)] for e in english])
    for e, (shown, fits, lit) in zip(english, results, strict=True):
        assert shown == [sample(texts[e])], e
        assert fits, f"{e!r} -> {texts[e]!r} is wider than 128 pixels"
        assert lit > 0, e


def test_four_chinese_lines_fill_the_panel(run_mpy, tmp_path):
    four = ["PICKUP", "12 bags", "3 left to scan", "Scan a bag"]
    [(shown, fits, _)] = render(run_mpy, tmp_path, [four])
    assert shown == ["揽收", "12 个大包", "还剩 3 个未扫", "扫描大包"]
    assert fits


def test_a_screen_taller_than_the_panel_is_condensed_and_every_line_drawn(run_mpy, tmp_path):
    five = ["PICKUP", "12 bags", "3 left to scan", "Scan a bag", "badge"]
    results = render(run_mpy, tmp_path, [five, *([line] for line in five)])
    (shown, fits, lit), alone = results[0], results[1:]
    assert shown == ["揽收", "12 个大包", "还剩 3 个未扫", "扫描大包", "工牌"]
    assert fits
    # Every line's pixels, none drawn over another: "揽收" and "12 个大包" share a row.
    assert lit == sum(n for _, _, n in alone)


def test_a_screen_that_cannot_be_condensed_is_reported_clipped(run_mpy, tmp_path):
    # 7 glyphs a line (112 pixels): no two share a row, and five need 80 rows.
    [(_, fits, _)] = render(run_mpy, tmp_path, [["Scan next parcel"] * 5])
    assert not fits


def test_data_passes_through_and_ascii_lines_stay_8_pixels_high(run_mpy, tmp_path):
    lines = ["BS0000000001", "12/300", "LZ000000001CN", "12.50 kg", "DIM 60x40x40"]
    [(shown, fits, _)] = render(run_mpy, tmp_path, [lines])
    assert shown == ["BS0000000001", "12/300", "LZ000000001CN", "12.50 公斤", "实测 60x40x40"]
    assert fits  # 8 + 8 + 8 + 16 + 16 rows


def test_a_name_is_drawn_from_the_glyphs_the_config_brought(run_mpy, tmp_path):
    [(_, _, boxes)] = render(run_mpy, tmp_path, [["鑫"]])  # in no screen text: a box
    [(shown, fits, drawn)] = render(run_mpy, tmp_path, [["鑫"]], names=font_file({"鑫"}))
    assert shown == ["鑫"] and fits
    assert drawn != boxes and drawn > 2 * 12  # the glyph's strokes, not a box's outline


INTERNED = r"""
import json
import framebuf
import micropython
from drivers.zh_text import ZhText


class Panel(framebuf.FrameBuffer):
    def __init__(self):
        self.width, self.height = 128, 64
        super().__init__(bytearray(128 * 8), 128, 64, framebuf.MONO_VLSB)


panel = Panel()
text = ZhText("lang/text.bin", ["lang/font.bin", "names.bin"])
screens = json.loads(open("screens.json").read())
text.show(panel, screens[0])
micropython.qstr_info()
for lines in screens:
    text.show(panel, lines)
micropython.qstr_info()
"""


def test_drawing_chinese_interns_no_names(run_mpy, tmp_path):
    """Interned names are never freed, and past 620 the unix port adds a 7 KB pool
    (docs/firmware.md): a renderer that made one-character strings would intern every
    character it draws."""
    glyphs.build(tmp_path)
    screens = [["BS0000000001", "12/300"]] + [[sample(e)] for e in glyphs.catalog()]
    screens.append(["PICKUP", "鑫师傅", "3 LZ000000001CN", "S1 ok"])
    (tmp_path / "screens.json").write_text(json.dumps(screens))
    (tmp_path / "names.bin").write_bytes(font_file(set("鑫师傅")))
    before, after = re.findall(r"n_qstr=(\d+)", run_mpy(INTERNED, heap="1M").stdout)
    assert after == before


@pytest.mark.parametrize("bad", ["A\tB\tC", "X #\tno number", "Ü\t非 ASCII", "Over 50 kg\t超过"])
def test_a_malformed_catalog_line_is_refused_with_its_place(tmp_path, bad):
    path = tmp_path / "zh.txt"
    path.write_text(f"// comment\n{bad}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"zh.txt:2"):
        glyphs.catalog(path)


# --- the handheld as the gateway configures it ----------------------------------------------


def chinese_handheld(device, language="zh"):  # noqa: F811
    """A seller's handheld whose config says its language and brings its names' glyphs, as
    gateway/services/device_config.py builds them."""
    driver = driver_entry(name="鑫师傅")  # 鑫 is in no screen text: its glyph comes with the config
    return device(
        screen_lang=language,
        drivers=[driver],
        name_glyphs=name_glyphs([driver["name"]]),
        stores=["S1"],
    )


def test_every_screen_fits_the_panel_in_both_languages(run_mpy, tmp_path):
    """The tour of every screen (devkit/screen_tour.py, the one docs/firmware.md shows) on a
    handheld in Chinese: each screen's Chinese drawn again by the renderer, which says whether
    it fit, the pickup's six lines (88 rows) condensed among them; no English word left; and
    the same screens in English at most 8 lines of 16 characters (drivers/ssd1306.py)."""
    hh = SimHandheld.with_config(tmp_path / "flash", screen_tour.config("zh"))
    try:
        seen = screen_tour.tour(hh.start())
    finally:
        hh.kill()
    names = (hh.state_dir / "name_glyphs.bin").read_bytes()
    drawn = render(run_mpy, tmp_path, [e["text"] for _, e in seen], names=names)
    assert [name for (name, _), (_, fits, _) in zip(seen, drawn, strict=True) if not fits] == []
    english = re.compile(r"\b[A-Za-z][a-z]+\b")
    assert [(name, line) for name, e in seen for line in e["text"] if english.search(line)] == []
    too_big = [name for name, e in seen if len(e["screen"]) > 8 or max(map(len, e["screen"])) > 16]
    assert too_big == []
    screens = dict(seen)
    assert screens["pickup-signed-in"]["text"] == [
        "揽收", "0 个大包", "还剩 2 个未扫", "已登录", "S1", screen_tour.DRIVER
    ]  # fmt: skip


def test_the_names_glyphs_come_with_the_config(device):  # noqa: F811
    hh = chinese_handheld(device)
    ctl = hh.control
    to_pickup(ctl)
    ctl.scan("BADGE-042")
    assert ctl.scan(f"PIN:{PIN}")["text"][-1] == "鑫师傅"  # drawn from the config's glyphs
    glyphs = (hh.state_dir / "name_glyphs.bin").read_bytes()
    assert glyphs == font_file(set("鑫师傅"))  # the name's glyphs, as the gateway rendered them


def test_english_when_the_gateway_says_so_with_the_names_glyphs(device):  # noqa: F811
    ctl = chinese_handheld(device, "en").control
    event = ctl.scan("LZRTS0001")
    assert event["text"] == event["screen"]  # not translated
    to_pickup(ctl)
    event = ctl.scan("BADGE-042")
    assert event["text"] == event["screen"] == ["PICKUP", "鑫师傅", "PIN", "0"]


ENGLISH = RENDER.replace('ZhText("lang/text.bin"', "ZhText(None")


def test_in_english_a_name_is_drawn_from_its_glyphs(run_mpy, tmp_path):
    glyphs.build(tmp_path)
    (tmp_path / "screens.json").write_text(json.dumps([["PICKUP", "鑫师傅"]]))
    [(_, _, boxes)] = json.loads(run_mpy(ENGLISH, heap="1M").stdout)  # before the config's glyphs
    (tmp_path / "names.bin").write_bytes(font_file(set("鑫师傅")))
    [(shown, fits, drawn)] = json.loads(run_mpy(ENGLISH, heap="1M").stdout)
    assert shown == ["PICKUP", "鑫师傅"] and fits
    assert drawn != boxes
