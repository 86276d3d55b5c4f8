"""GM65 / GM861 barcode module on a UART stream: CR-terminated codes. Trigger and
configuration (command frames) are drivers/gm65_frames.py, loaded only while used."""

import time
from micropython import const

_REPLY_HEAD = const(0x02)  # replies: 02 00 00 <len> <data...> <crc hi> <crc lo>
_CR = const(0x0D)
_LF = const(0x0A)
_FIRST_PRINTABLE = const(0x20)
_LAST_PRINTABLE = const(0x7E)
_CHUNK = const(16)


class BadBarcode(ValueError):
    """A read that is not a usable code: control bytes, non-ASCII, or too long."""

    code = "BAD_BARCODE"


class GM65:
    """stream: an asyncio stream with readinto() (asyncio.StreamReader(uart) on the ESP32).

    write(bytes): sends command frames (uart.write; drivers/gm65_frames.py), None for a
    read-only scanner.
    The same code read again within debounce_ms of its last sighting is ignored.
    Each line read yields a code or BadBarcode, whatever bytes it holds.
    """

    def __init__(self, stream, write=None, max_len=64, debounce_ms=1000, clock=None):
        self.stream = stream
        self.write = write
        self.max_len = max_len
        self.debounce_ms = debounce_ms
        self.clock = clock or time.ticks_ms
        self._chunk = bytearray(_CHUNK)
        self._chunk_len = 0
        self._chunk_pos = 0
        self._line = bytearray(max_len)
        self._last = bytearray(max_len)
        self._last_len = -1
        self._last_at = 0
        self.reply_by = None  # ticks by which a command's reply may come (gm65_frames)

    async def _byte(self):
        while self._chunk_pos >= self._chunk_len:
            n = await self.stream.readinto(self._chunk)
            if not n:
                raise EOFError("GM65 stream closed")
            self._chunk_len = n
            self._chunk_pos = 0
        b = self._chunk[self._chunk_pos]
        self._chunk_pos += 1
        return b

    async def _read_line(self):
        """Fill self._line; returns its length, -1 if too long, -2 if it held a bad byte."""
        n = 0
        status = 0
        while True:
            if self._chunk_pos < self._chunk_len:  # no coroutine per buffered byte
                b = self._chunk[self._chunk_pos]
                self._chunk_pos += 1
            else:
                b = await self._byte()
            if b == _CR or b == _LF:
                return status if status else n
            if n == 0 and status == 0 and b == _REPLY_HEAD and self._reply_due():
                # 02 00 00 <len> <data> <crc hi> <crc lo> answers a command frame; it is not
                # CR-terminated, and its length and CRC bytes may be any value. A reply is
                # looked for only shortly after a frame was sent (reply_by), so a scanned code
                # that starts with STX is a bad read, not a reply that swallows the next scan.
                self.reply_by = None
                b = await self._byte()
                if b == 0:
                    b = await self._byte()
                    if b == 0:
                        for _ in range(await self._byte() + 2):
                            await self._byte()
                        continue
                if b == _CR or b == _LF:
                    return -2
                status = -2
                continue
            if b < _FIRST_PRINTABLE or b > _LAST_PRINTABLE:
                status = status or -2
            elif n >= self.max_len:
                status = -1
            elif not status:
                self._line[n] = b
                n += 1

    def _reply_due(self):
        return self.reply_by is not None and time.ticks_diff(self.reply_by, self.clock()) >= 0

    async def read(self):
        """The next barcode as str; raises BadBarcode (code BAD_BARCODE) for a bad read."""
        while True:
            n = await self._read_line()
            if n == 0:
                continue  # the LF of a CR LF pair, or a stray terminator
            if n < 0:
                # Short texts (interned names, no heap string): the device never shows them.
                raise BadBarcode("too long" if n == -1 else "bad bytes")
            now = self.clock()
            line = self._line
            last = self._last
            # The same code again within debounce_ms of its last sighting is a re-read.
            same = n == self._last_len and time.ticks_diff(now, self._last_at) < self.debounce_ms
            for i in range(n):
                if line[i] != last[i]:
                    same = False
                last[i] = line[i]
            self._last_len = n
            self._last_at = now
            if not same:
                return line[:n].decode()
