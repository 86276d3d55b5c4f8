# Chinese on the 128x64 OLED (docs/firmware.md, "Languages"). The firmware's screens are English
# lines; this looks each one up in the catalog devkit/glyphs.py packs (lang/text.bin) and draws
# the Chinese with the panel's 8x8 font for ASCII and 16x16 glyphs read from flash for the rest:
# lang/font.bin for the screens' own characters, and the glyphs of sellers' and couriers' names
# the gateway sends with the config. Of the font only one glyph's 32 bytes are ever in RAM.
# English screens are drawn by it too, without the catalog: a seller's or courier's Chinese
# name is drawn from its glyphs there as well, where the panel's font has hatched blocks.
#
# Text is handled as UTF-8 bytes (memoryview of a str), never a character at a time: MicroPython
# interns every one-character string that iterating or indexing a str makes, and interned names
# are never freed (docs/firmware.md, "Few interned names"). For the same reason the attributes
# and methods reuse names the runtime and the firmware have interned already.
import framebuf
from micropython import const

_GLYPH = const(16)  # pixels square; a line holding one is 16 rows high, an ASCII line 8
_GLYPH_BYTES = const(32)  # MONO_HLSB: 16 rows of 2 bytes
_WIDTH = const(128)
_HEIGHT = const(64)
_ENTRY = const(128)  # bytes read at a catalog probe: the longest entry fits (devkit/glyphs.py)
_NUMBERS = const(8)  # runs of digits a translated line takes over; a line with more is shown as is
_TAB = const(9)
_NEWLINE = const(10)
_NUMBER = const(35)  # "#", a run of digits in a catalog key
_GAP = const(8)  # pixels between two lines condensed into one row


class ZhText:
    def __init__(self, path, items):
        """path: text.bin, None for English; items: the paths of the font files, the bundle's
        font.bin, then the names' glyphs, looked in in this order (the names' glyphs arrive
        with the first config). The bundle's files stay open: a lookup seeks, and reads into
        buffers made here."""
        self.file = None
        self.stream = None
        try:
            self.stream = open(items[0], "rb")
            if path:
                self.file = open(path, "rb")
        except OSError:  # a bundle without its lang/ folder: the lines as they are
            pass
        self.path = items[1] if len(items) > 1 else None  # replaced by a config: opened per screen
        self.source = None  # the names' glyph file while a screen is drawn
        self.buffer = bytearray(_GLYPH_BYTES)  # one glyph's bitmap
        self.buf = framebuf.FrameBuffer(self.buffer, _GLYPH, _GLYPH, framebuf.MONO_HLSB)
        self.key = bytearray(_ENTRY)  # the catalog key of the line being translated
        self._scratch = bytearray(_ENTRY)  # the entry a lookup probes
        # The translated line: the Chinese of an entry, its numbers as long as the English.
        self._line = bytearray(2 * _ENTRY)
        self.pos = bytearray(2 * _NUMBERS)  # where the line's runs of digits start and end
        self._buf = bytearray(2)
        self.lines = None  # the Chinese text of the last show()

    def close(self):
        """Close the files kept open (a config changed the language)."""
        if self.file is not None:
            self.file.close()
        if self.stream is not None:
            self.stream.close()

    def _read(self, file, pos):
        """The little-endian u16 at pos in file."""
        file.seek(pos)
        file.readinto(self._buf)
        return self._buf[0] | self._buf[1] << 8

    def get(self, line):
        """The Chinese of an English screen line (a str), or the line itself (a bag number, a
        name). A run of digits is "#" in the catalog's keys, and goes back into the Chinese."""
        text = memoryview(line)  # its UTF-8 bytes, not a copy
        n = len(text)
        if n >= _ENTRY or self.file is None:  # no catalog key is that long
            return line
        key = self.key
        pos = self.pos
        k = 0
        runs = 0
        i = 0
        while i < n:
            c = text[i]
            if 48 <= c <= 57:  # a digit
                if runs == _NUMBERS:
                    return line
                pos[2 * runs] = i
                while i < n and 48 <= text[i] <= 57:
                    i += 1
                pos[2 * runs + 1] = i
                runs += 1
                c = _NUMBER
            else:
                i += 1
            key[k] = c
            k += 1
        # Binary search of the entries, sorted by their English bytes (devkit/glyphs.py).
        file = self.file
        entry = self._scratch
        count = self._read(file, 0)
        lo = 0
        hi = count - 1
        while lo <= hi:
            mid = (lo + hi) >> 1
            file.seek(2 + 2 * count + self._read(file, 2 + 2 * mid))
            file.readinto(entry)
            i = 0
            while i < k and entry[i] == key[i]:
                i += 1
            if i == k and entry[i] == _TAB:
                break
            # The English ends at the tab, which sorts below every character of a screen.
            if i < k and (entry[i] == _TAB or entry[i] < key[i]):
                lo = mid + 1
            else:
                hi = mid - 1
        else:
            return line
        out = self._line
        m = 0
        runs = 0
        i = k + 1
        while entry[i] != _NEWLINE:
            c = entry[i]
            i += 1
            if c == _NUMBER and runs < _NUMBERS:
                for j in range(pos[2 * runs], pos[2 * runs + 1]):
                    out[m] = text[j]
                    m += 1
                runs += 1
            else:
                out[m] = c
                m += 1
        return str(memoryview(out)[:m], "utf-8")

    def readinto(self, code):
        """Read code's bitmap into self.buffer; False if no font file has it."""
        file = self.stream
        if file is not None and self.find(file, code):
            return True
        if self.source is None and self.path:
            try:
                self.source = open(self.path, "rb")
            except OSError:  # before the first config's glyphs: a box
                return False
        return self.source is not None and self.find(self.source, code)

    def find(self, file, code):
        """Read code's bitmap from one font file into self.buffer; False if it has none."""
        count = self._read(file, 0)
        lo = 0
        hi = count - 1
        while lo <= hi:
            mid = (lo + hi) >> 1
            c = self._read(file, 2 + 2 * mid)
            if c == code:
                file.seek(2 + 2 * count + _GLYPH_BYTES * mid)
                file.readinto(self.buffer)
                return True
            if c < code:
                lo = mid + 1
            else:
                hi = mid - 1
        return False

    def width(self, text):
        """The pixels text takes, plus 1 when it holds a wide character (its row is then 16
        pixels high): the widths are multiples of 8, so the low bit is free."""
        w = 0
        wide = 0
        for c in memoryview(text):
            if c < 0x7F:
                w += 8
            elif c < 0x80 or c >= 0xC0:  # a wide character's first byte; the others: 0x80-0xBF
                w += _GLYPH
                wide = 1
        return w | wide

    def show(self, panel, lines, x=0):
        """Draw the lines translated, top to bottom, in the panel's columns from x on (the
        whole panel, cleared, when x is 0); returns (the lines drawn, True if all of them
        fit). A screen taller than the panel is condensed: from the top, a line goes on the
        row before it, 8 pixels apart, where there is room, until the rows fit. A glyph the
        fonts lack is drawn as a box."""
        if not x:
            panel.fill(0)
        count = len(lines)
        shown = [self.get(str(lines[i])) for i in range(count)]
        rows = 0
        for i in range(count):
            rows += _GLYPH if self.width(shown[i]) & 1 else 8
        fits = True
        y = 0
        i = 0
        try:
            while i < count:
                # The row: line i, and while the screen is too tall the next ones beside it.
                w = self.width(shown[i])
                end = i + 1
                used = w & ~1
                size = _GLYPH if w & 1 else 8
                while rows > _HEIGHT and end < count:
                    w = self.width(shown[end])
                    if x + used + _GAP + (w & ~1) > _WIDTH:
                        break
                    used += _GAP + (w & ~1)
                    grown = _GLYPH if w & 1 else size
                    rows += grown - size - (_GLYPH if w & 1 else 8)
                    size = grown
                    end += 1
                at = x
                while i < end:
                    at = self.text(panel, shown[i], at, y, size)
                    if at < 0:
                        fits = False
                        at = _WIDTH  # the rest of the row does not fit either
                    at += _GAP
                    i += 1
                y += size
        finally:
            if self.source is not None:
                self.source.close()
                self.source = None
        self.lines = shown
        return shown, fits

    def text(self, panel, line, x, pos, size):
        """Draw one line from column x in the row of size pixels from row pos (ASCII centred
        in a 16-pixel row); returns the column where it ends, or -1 if it did not fit (what
        fits is drawn)."""
        data = memoryview(line)
        n = len(data)
        if pos + size > _HEIGHT:
            return -1 if n else x  # an empty line below the panel hides nothing
        y = pos + (size - 8) // 2  # where ASCII goes
        i = 0
        ch = 0  # characters before byte i: a str slice counts characters
        while i < n:
            c = data[i]
            if c < 0x7F:  # a run of ASCII, drawn by the panel's 8x8 font
                start = ch
                while i < n and data[i] < 0x7F:
                    i += 1
                    ch += 1
                if x + 8 * (ch - start) > _WIDTH:
                    panel.text(line[start : start + (_WIDTH - x) // 8], x, y, 1)
                    return -1
                panel.text(line[start:ch] if start or i < n else line, x, y, 1)
                x += 8 * (ch - start)
                continue
            # A wide character: its code point from 2 or 3 UTF-8 bytes (the font files hold
            # the Basic Multilingual Plane; 4 bytes decode to a code no file has: a box).
            if c >= 0xF0:
                code = 0x10000
            elif c >= 0xE0:
                code = (c & 0x0F) << 12 | (data[i + 1] & 0x3F) << 6 | data[i + 2] & 0x3F
            elif c >= 0xC0:
                code = (c & 0x1F) << 6 | data[i + 1] & 0x3F
            else:
                code = c
            i += 1
            while i < n and 0x80 <= data[i] < 0xC0:
                i += 1
            ch += 1
            if x + _GLYPH > _WIDTH:
                return -1
            if self.readinto(code):
                panel.blit(self.buf, x, pos)
            else:
                panel.rect(x + 1, pos + 1, _GLYPH - 2, _GLYPH - 2, 1)
            x += _GLYPH
        return x
