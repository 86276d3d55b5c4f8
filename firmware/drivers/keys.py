"""Debounced keys polled from level callables; presses come out as key names."""

import asyncio
from micropython import const

_QUEUE = const(4)


class Keys:
    """pins: {name: callable returning the level}. A key changes state only after
    `samples` equal readings in a row, sampled every period_ms while it changes (3 x 7 ms
    ~ 20 ms covers the usual 5-10 ms contact bounce), every 2 x period_ms while all rest."""

    def __init__(self, pins, active_low=True, samples=3, period_ms=7):
        self.names = tuple(pins)
        self._pins = tuple(pins[n] for n in self.names)
        self.active_low = active_low
        self.samples = samples
        self.period_ms = period_ms
        self._down = bytearray(len(self.names))  # debounced state, 1 = pressed
        self._count = bytearray(len(self.names))  # readings in a row that differ from it
        self._queue = [None] * _QUEUE
        self._head = 0
        self._size = 0

    def pressed(self, name):
        return bool(self._down[self.names.index(name)])

    def poll(self):
        """Sample every key once; queue the names of keys that became pressed. True while a
        key is changing (being debounced)."""
        changing = False
        down = self._down
        count = self._count
        pins = self._pins
        # Indexes, not enumerate(): this runs every period_ms, and enumerate allocates an
        # iterator and a tuple per key each time.
        for i in range(len(pins)):
            level = 1 if (pins[i]() == 0) == self.active_low else 0
            if level == down[i]:
                count[i] = 0
                continue
            count[i] += 1
            changing = True
            if count[i] >= self.samples:
                down[i] = level
                count[i] = 0
                # A full queue means nobody is reading: drop presses rather than grow.
                if level and self._size < _QUEUE:
                    self._queue[(self._head + self._size) % _QUEUE] = self.names[i]
                    self._size += 1
        return changing

    def pop(self):
        if not self._size:
            return None
        name = self._queue[self._head]
        self._head = (self._head + 1) % _QUEUE
        self._size -= 1
        return name

    async def next(self):
        """The name of the next key pressed."""
        while not self._size:
            changing = self.poll()
            if self._size:
                break
            # Idle keys are sampled half as often: every wake-up of a task allocates (in
            # asyncio), and a press lasts far longer than two periods.
            await asyncio.sleep_ms(self.period_ms if changing else 2 * self.period_ms)
        return self.pop()
