# The seller's copy at the door (docs/firmware.md, "The seller's copy"; the manual gives the
# seller one copy of the receipt at pickup): after a handover the screen shows a QR code the
# seller's phone opens once the handheld has synced, beside the pickup time. Loaded by
# app/pickup.py for this screen only, when the config says where the gateway is served.
# The QR encoder is here, not in a module of its own, in two functions named with names
# interned already: a module loaded interns three names for good, a function its name
# (docs/firmware.md, "Few interned names"). Section numbers are ISO/IEC 18004:2015's.
from micropython import const

from app import clock

_SIZE = const(29)  # modules a side: 17 + 4 * version 3 (6.3.1)
_DATA_CODEWORDS = const(55)  # version 3-L: 70 codewords, 15 for error correction (Table 9)
_EC_CODEWORDS = const(15)
_CAPACITY = const(77)  # alphanumeric characters of version 3-L (Table 7)
_ALNUM = const(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")  # Table 5
# The generator polynomial of 15 error correction codewords past its leading 1, as values:
# Annex A gives them as powers of 2 in GF(256), 8 183 61 91 202 37 51 58 58 237 140 124 5 99 105.
_GENERATOR = const(b"\x1d\xc4\x6f\xa3\x70\x4a\x0a\x69\x69\x8b\x84\x97\x20\x86\x1a")
_FORMAT_L_MASK0 = const(0x77C4)  # EC level L (01), mask 000, BCH code and 0x5412 (7.9.1)
_ALIGN = const(22)  # the one alignment pattern's centre in version 3 (Annex E)
_QR_SCALE = const(2)  # pixels a module: 58 of the OLED's 64 rows
_QR_AT = const(3)  # the code's corner: a lit quiet zone of 3 pixels around it
_TEXT_X = const(64)  # the right half: 8 columns of the 8x8 font
# What the code holds: protocol/receipt.py door_text, which the gateway checks the config's
# receipt_url with; built here because loading that module would intern twelve names.
# tests/firmware/test_door_receipt.py checks the two agree.
_DOOR_TEXT = const("%s/R/%s/%.16s")
_STAMP = const("%04d %02d-%02d %02d:%02d UTC+8")  # one string: short ones are interned names


def show(board, addr, handover):
    """Draw the door screen for a handover just signed and journaled, and beep: addr is the
    config's receipt_url, the gateway as phones reach it (a name interned already, where "url"
    would be one more); handover is (its number of bags, its signature, digest), digest the
    first 16 hex of sha256 over the signed message: the receipt id (app/signing.py). Returns
    what the QR code holds, or None when the URL does not fit one (the gateway sends none
    such: the screen then shows the receipt id to read out)."""
    bags, sig, digest = handover
    text = (_DOOR_TEXT % (addr.rstrip("/"), digest, sig)).upper()
    # The minute the courier signed (docs/domain.md, "Time zone"): date, then time and zone.
    column = ("HANDOVER", "%d bags" % bags) + tuple((_STAMP % clock.local_time()[:5]).split())
    display = board.display
    panel = display.panel
    panel.fill(0)
    try:
        encode(text, panel)
    except ValueError:  # a URL too long or outside the alphanumeric set
        text = None
        for i in range(4):
            panel.text(digest[i * 4 : i * 4 + 4], 8, 12 + i * 10, 1)
    if display.text:  # Chinese: drivers/zh_text.py draws the column
        display.text.show(panel, column, _TEXT_X)
    else:
        for i in range(len(column)):
            panel.text(column[i], _TEXT_X, i * 8, 1)
    panel.show()
    display.lines = list(column)  # the control channel's screen: the column's English lines
    board.report("ok")
    board.beep("ok")
    return text


def encode(text, panel):
    """Draw the QR code (version 3-L, alphanumeric, mask 000) of text in the panel's left
    64x64 pixels: the modules drawn straight into the frame buffer, _QR_SCALE pixels a side,
    light ones lit and dark ones off (the usual dark-on-light code) in a lit quiet zone, so
    that no matrix of modules takes the heap. ValueError, before anything is drawn, unless
    text is 1 to 77 characters of 0-9 A-Z space $%*+-./: (Table 5)."""
    words = payload(text)
    panel.fill_rect(0, 0, _TEXT_X, _TEXT_X, 1)
    # The module at row i // _SIZE, column i % _SIZE made dark. A lambda: a named helper
    # would be one more name interned for good.
    dark = lambda i: panel.fill_rect(  # noqa: E731
        _QR_AT + i % _SIZE * _QR_SCALE, _QR_AT + i // _SIZE * _QR_SCALE, _QR_SCALE, _QR_SCALE, 0
    )
    # The function patterns (version 3 has no version information, 6.10): finder patterns
    # (6.3.3) within their light separators, the alignment pattern (6.3.6), timing patterns
    # (6.3.5), format information (7.9, both copies, bit 14 first) and the dark module.
    for i in (0, _SIZE - 7, (_SIZE - 7) * _SIZE):  # the finders' top left corners
        for r in range(7):
            for c in range(7):
                if max(abs(r - 3), abs(c - 3)) != 2:
                    dark(i + r * _SIZE + c)
    for r in range(-2, 3):
        for c in range(-2, 3):
            if max(abs(r), abs(c)) != 1:
                dark((_ALIGN + r) * _SIZE + _ALIGN + c)
    for i in range(8, _SIZE - 8, 2):
        dark(6 * _SIZE + i)
        dark(i * _SIZE + 6)
    for i in range(15):
        if (_FORMAT_L_MASK0 >> i) & 1:
            dark((i if i < 6 else i + 1 if i < 8 else _SIZE - 15 + i) * _SIZE + 8)
            dark(8 * _SIZE + (_SIZE - 1 - i if i < 8 else 15 - i if i < 9 else 14 - i))
    dark((_SIZE - 8) * _SIZE + 8)
    # The codewords in the two-column zigzag from the bottom right (7.7.3), around the
    # function patterns, with mask 000: (row + column) even is inverted (7.8.2).
    bit = 0
    right = _SIZE - 1
    while right > 0:
        if right == 6:  # the vertical timing pattern's column is skipped
            right -= 1
        upward = ((_SIZE - 1 - right) // 2) % 2 == 0
        for k in range(_SIZE):
            r = _SIZE - 1 - k if upward else k
            for c in (right, right - 1):
                if (
                    (r < 9 and (c < 9 or c >= _SIZE - 8))
                    or (r >= _SIZE - 8 and c < 9)
                    or r == 6
                    or c == 6
                    or (abs(r - _ALIGN) <= 2 and abs(c - _ALIGN) <= 2)
                ):
                    continue
                x = (words[bit >> 3] >> (7 - (bit & 7))) & 1 if bit < len(words) * 8 else 0
                bit += 1
                if x ^ (1 - (r + c) % 2):
                    dark(r * _SIZE + c)
        right -= 2


def payload(text):
    """The 70 codewords of text (7.4 data, 7.5 error correction); ValueError when text does
    not fit (encode). Apart from encode so that neither needs a large block of the heap; the
    name is interned already (net/mqtt.py)."""
    # Bytes: MicroPython interns every one-character string it makes, so a loop over the
    # characters would add names for good.
    text = text.encode()
    n = len(text)
    if not 0 < n <= _CAPACITY:
        raise ValueError
    for ch in text:
        if _ALNUM.find(ch) < 0:
            raise ValueError
    # The data codewords (7.4.4), then the error correction ones: the mode indicator, the
    # character count (9 bits, versions 1-9), then pairs of characters in 11 bits (a last
    # one alone in 6), written bit by bit.
    words = bytearray(_DATA_CODEWORDS + _EC_CODEWORDS)
    bit = 0
    for k in range(-4, n, 2):
        if k < 0:
            x, width = (0b0010, 4) if k == -4 else (n, 9)
        elif k + 1 < n:
            x, width = _ALNUM.find(text[k]) * 45 + _ALNUM.find(text[k + 1]), 11
        else:
            x, width = _ALNUM.find(text[k]), 6
        for i in range(width - 1, -1, -1):
            if (x >> i) & 1:
                words[bit >> 3] |= 0x80 >> (bit & 7)
            bit += 1
    bit += min(4, _DATA_CODEWORDS * 8 - bit)  # the terminator: zero bits (7.4.9)
    bit = (bit + 7) >> 3
    for i in range(bit, _DATA_CODEWORDS):  # padding: 0xEC and 0x11 in turn
        words[i] = 0x11 if (i - bit) % 2 else 0xEC
    # Reed-Solomon (7.5.2): the remainder of the data times x^15 divided by the generator,
    # in a shift register; products in GF(256) modulo 0x11D bit by bit, without tables.
    for i in range(_DATA_CODEWORDS):
        lead = words[i] ^ words[_DATA_CODEWORDS]
        for k in range(_EC_CODEWORDS):
            x = words[_DATA_CODEWORDS + k + 1] if k < _EC_CODEWORDS - 1 else 0
            c = _GENERATOR[k]
            r = lead
            while r:
                if r & 1:
                    x ^= c
                c <<= 1
                if c & 0x100:
                    c ^= 0x11D
                r >>= 1
            words[_DATA_CODEWORDS + k] = x
    return words
