"""The fleet's progress: a table redrawn in place on a terminal, or plain lines on a pipe."""

import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devkit.fleet.fleet import Fleet


class Display:
    """A table redrawn in place on a terminal; on a pipe, one line per change of step."""

    def __init__(self, fleet: "Fleet", stream=None, live: bool | None = None):
        self.fleet = fleet
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="display", daemon=True)
        self._last_plain = None
        self._lines = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.draw()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.draw()

    def table(self) -> list[str]:
        f = self.fleet
        lines = [
            f"{f.plan.scenario.get('name', 'fleet')}: step {f.step_no}/{f.step_count} "
            f"{f.step_name}  link {'UP' if f.link_up() else 'DOWN'} "
            f"({f.link.connections if f.link else 0} conn)  "
            f"{time.monotonic() - f.started:5.1f} s",
            f"{'handheld':<24} {'role':<9} {'step':<10} {'bags':>4} {'parcels':>7} "
            f"{'refused':>7} {'queue':>5} {'link':<4} screen",
        ]
        for d in f.plan.devices:
            link = "-" if d.connected is None else ("up" if d.connected else "down")
            depth = "-" if d.depth is None else str(d.depth)
            lines.append(
                f"{d.device_id[:24]:<24} {d.role:<9} {d.step[:10]:<10} {d.bags:>4} "
                f"{d.parcels:>7} {d.refused:>7} {depth:>5} {link:<4} "
                f"{(d.error or d.screen)[:40]}"
            )
        t = f.tally()
        lines.append(
            f"{'total':<24} {'':<9} {'':<10} {t['bags']:>4} {t['parcels']:>7} "
            f"{t['refused_scans']:>7} {t['queue']:>5}"
        )
        return lines

    def draw(self) -> None:
        with self.fleet.lock:
            if self.live:
                lines = self.table()
                up = f"\x1b[{self._lines}F" if self._lines else ""
                self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
                self._lines = len(lines)
            else:
                t = self.fleet.tally()
                key = (self.fleet.step_no, self.fleet.link_up(), t["bags"] // 10)
                if key != self._last_plain:
                    self._last_plain = key
                    self.stream.write(
                        f"fleet: {time.monotonic() - self.fleet.started:6.1f} s step "
                        f"{self.fleet.step_no}/{self.fleet.step_count} {self.fleet.step_name}; "
                        f"link {'up' if self.fleet.link_up() else 'DOWN'}; bags {t['bags']}, "
                        f"parcels {t['parcels']}, refused {t['refused_scans']}, "
                        f"queued {t['queue']}\n"
                    )
            self.stream.flush()
