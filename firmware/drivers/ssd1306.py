"""SSD1306 128x64 OLED on I2C (after micropython-lib's driver) and a text-line Display."""

import framebuf
from micropython import const

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
# I2C control byte (datasheet 8.1.5.2): Co=1 D/C#=0 for one command, Co=0 D/C#=1 for data.
_CONTROL_CMD = const(0x80)
_CONTROL_DATA = const(0x40)

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
        self.external_vcc = external_vcc
        self.buffer = bytearray(height // 8 * width)
        self._cmd = bytearray(2)
        self._data = [b"\x40", self.buffer]
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)
        try:
            self.init_display()
        except OSError:
            raise OSError("SSD1306 not answering at I2C address 0x%02X" % addr) from None

    def init_display(self):
        for cmd in (
            _SET_DISP,  # display off
            _SET_MEM_ADDR,
            0x00,  # horizontal addressing
            _SET_DISP_START_LINE,
            _SET_SEG_REMAP | 0x01,  # column 127 mapped to SEG0
            _SET_MUX_RATIO,
            self.height - 1,
            _SET_COM_OUT_DIR | 0x08,  # scan from COM[N] to COM0
            _SET_DISP_OFFSET,
            0x00,
            _SET_COM_PIN_CFG,
            0x02 if self.width > 2 * self.height else 0x12,
            _SET_DISP_CLK_DIV,
            0x80,
            _SET_PRECHARGE,
            0x22 if self.external_vcc else 0xF1,
            _SET_VCOM_DESEL,
            0x30,  # 0.83 * Vcc
            _SET_CONTRAST,
            0xFF,
            _SET_ENTIRE_ON,  # output follows RAM
            _SET_NORM_INV,  # not inverted
            _SET_CHARGE_PUMP,
            0x10 if self.external_vcc else 0x14,
            _SET_DISP | 0x01,  # display on
        ):
            self.write_cmd(cmd)
        self.fill(0)
        self.show()

    def write_cmd(self, cmd):
        self._cmd[0] = _CONTROL_CMD
        self._cmd[1] = cmd
        self.i2c.writeto(self.addr, self._cmd)

    def show(self):
        self.write_cmd(_SET_COL_ADDR)
        self.write_cmd(0)
        self.write_cmd(self.width - 1)
        self.write_cmd(_SET_PAGE_ADDR)
        self.write_cmd(0)
        self.write_cmd(self.height // 8 - 1)
        self.i2c.writevto(self.addr, self._data)


class Display:
    """Eight text lines of sixteen 8x8 characters; .lines is what the screen shows."""

    def __init__(self, panel):
        self.panel = panel
        self.lines = []

    def show(self, lines):
        panel = self.panel
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
