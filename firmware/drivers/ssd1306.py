"""SSD1306 128x64 OLED on I2C (after micropython-lib's driver) and a text-line Display."""

import sys

import framebuf
from micropython import const

TYPE_CHECKING = const(False)  # True for pyright only: the Chinese text's type, not loaded here
if TYPE_CHECKING:
    from drivers.zh_text import ZhText

# Commands (SSD1306 datasheet, section 9 "Command table").
_SET_CONTRAST = const(0x81)
_SET_ENTIRE_ON = const(0xA4)
_SET_NORM_INV = const(0xA6)
_SET_DISP = const(0xAE)
_SET_MEM_ADDR = const(0x20)
_SET_COL_ADDR = const(0x21)
_SET_PAGE_ADDR = const(0x22)
_SET_DISP_START_LINE = const(0x40)
_SET_SEG_REMAP = const(0xA0)
_SET_MUX_RATIO = const(0xA8)
_SET_COM_OUT_DIR = const(0xC0)
_SET_DISP_OFFSET = const(0xD3)
_SET_COM_PIN_CFG = const(0xDA)
_SET_DISP_CLK_DIV = const(0xD5)
_SET_PRECHARGE = const(0xD9)
_SET_VCOM_DESEL = const(0xDB)
_SET_CHARGE_PUMP = const(0x8D)
# I2C control byte (datasheet 8.1.5.2): Co=0 D/C#=0, then command bytes only: a command
# sequence is one write, and takes no names (each method and argument name is interned for
# good, docs/firmware.md). Co=0 D/C#=1 for data.
_CONTROL_CMDS = const(0x00)

# Long strings, not interned names: the Chinese text's names are interned when it loads.
_ZH_TEXT = const("drivers.zh_text")
_ZH_TEXT_CLASS = const("ZhText")
# Where app/config.py keeps the glyphs of the names a config brought, in the flash storage
# folder; the Chinese text reads them (drivers/zh_text.py).
NAME_GLYPHS = const("/name_glyphs.bin")

_WIDTH = const(128)
_HEIGHT = const(64)
_LINES = const(8)  # 64 px / 8 px font
_COLUMNS = const(16)  # 128 px / 8 px font


class SSD1306(framebuf.FrameBuffer):
    """The panel as a MONO_VLSB framebuffer; show() sends it over I2C."""

    def __init__(self, i2c, addr=0x3C, width=_WIDTH, height=_HEIGHT, external_vcc=False):
        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.buffer = bytearray(height // 8 * width)
        # The whole panel as show()'s window, sent before every frame.
        self._cmd = bytes(
            (_CONTROL_CMDS, _SET_COL_ADDR, 0, width - 1, _SET_PAGE_ADDR, 0, height // 8 - 1)
        )
        self._data = [b"\x40", self.buffer]
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)
        try:
            i2c.writeto(
                addr,
                bytes(
                    (
                        _CONTROL_CMDS,
                        _SET_DISP,  # display off
                        _SET_MEM_ADDR,
                        0x00,  # horizontal addressing
                        _SET_DISP_START_LINE,
                        _SET_SEG_REMAP | 0x01,  # column 127 mapped to SEG0
                        _SET_MUX_RATIO,
                        height - 1,
                        _SET_COM_OUT_DIR | 0x08,  # scan from COM[N] to COM0
                        _SET_DISP_OFFSET,
                        0x00,
                        _SET_COM_PIN_CFG,
                        0x02 if width > 2 * height else 0x12,
                        _SET_DISP_CLK_DIV,
                        0x80,
                        _SET_PRECHARGE,
                        0x22 if external_vcc else 0xF1,
                        _SET_VCOM_DESEL,
                        0x30,  # 0.83 * Vcc
                        _SET_CONTRAST,
                        0xFF,
                        _SET_ENTIRE_ON,  # output follows RAM
                        _SET_NORM_INV,  # not inverted
                        _SET_CHARGE_PUMP,
                        0x10 if external_vcc else 0x14,
                        _SET_DISP | 0x01,  # display on
                    )
                ),
            )
        except OSError:
            raise OSError("SSD1306 not answering at I2C address 0x%02X" % addr) from None
        self.fill(0)
        self.show()

    def show(self):
        self.i2c.writeto(self.addr, self._cmd)
        self.i2c.writevto(self.addr, self._data)


class Display:
    """Eight text lines of sixteen 8x8 characters; .lines is what the screen shows, in the
    firmware's English. Once a config has said the language, .text (a drivers/zh_text.py
    ZhText, docs/firmware.md "Languages") draws them: in Chinese, or in English with the
    names' glyphs, and .text.lines is what the panel shows. Names interned already, and long
    strings, rather than new names: each is interned for good (docs/firmware.md, "Few
    interned names")."""

    def __init__(self, panel):
        self.panel = panel
        self.lines = []
        self.text: ZhText | None = None
        self.key = None  # the language .text draws

    def apply(self, key, storage):
        """A config's language, key (its "screen_lang"): Chinese for "zh" (the gateway's
        default), else English. The text's code is loaded at the first config and kept; it
        reads the bundle's lang/ folder (beside drivers/, devkit/glyphs.py) and the names'
        glyphs app/config.py stored. No language yet (a provisioning config): the panel's
        font, and the heap stays free for the gateway's first config, which app/config.py
        applies before this."""
        if key is None or self.text is not None and key == self.key:
            return
        self.key = key
        if self.text is not None:
            self.text.close()
        __import__(_ZH_TEXT)
        root = __file__[: __file__.rfind("drivers")]  # "" on the ESP32: the bundle is "/"
        self.text = getattr(sys.modules[_ZH_TEXT], _ZH_TEXT_CLASS)(
            root + "lang/text.bin" if key == "zh" else None,
            (root + "lang/font.bin", storage + NAME_GLYPHS),
        )

    def show(self, lines):
        panel = self.panel
        if self.text:
            self.text.show(panel, lines)
            panel.show()
            self.lines = [str(line) for line in lines]
            return
        panel.fill(0)
        shown = []
        # Indexes and no slice of a line that fits: this runs for every scan, and enumerate
        # and slicing allocate.
        for i in range(min(len(lines), _LINES)):
            line = str(lines[i])
            if len(line) > _COLUMNS:
                line = line[:_COLUMNS]
            shown.append(line)
            panel.text(line, 0, i * 8, 1)
        panel.show()
        self.lines = shown
