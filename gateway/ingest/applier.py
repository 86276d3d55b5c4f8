"""The ingest's applier: stored records applied to the bag registry, each device's in order,
beside storing (gateway/ingest/writer.py): in a process of its own on PostgreSQL
(`python -m gateway.ingest.applier <notes fd>`, started by the store process), in a thread
of the store process on SQLite.

Storing tells it, after each commit, which devices have records to apply; it applies a turn
of them per transaction (gateway/ingest/ledger.py `apply`), and every LAGGING_SCAN seconds it
asks the database which devices lag (records another instance acknowledged before it died).

Beside storing rather than in time slices between the store's batches: a batch that arrived
during a slice waited for all of it (its lock, read-ahead and prefetch queries came before
the budget, its writes after), and at 10,000 handhelds and 1,000 records/s that put
publish -> ack at p50 47-79 ms against 18 ms with no applying at all. A process, not a
thread, where the database allows it: a thread that applies holds the interpreter lock that
storing needs each time a query returns, and given 80 % of the time it starved storing
(p99 2.6 s; docs/benchmarks.md, "A fleet of handhelds"). Applying reads the devices' rows
without a lock, so storing never waits for it either (ledger `_settle`). SQLite takes one
writer at a time: there the two take turns (Turns) in one process.
"""

import bisect
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

from flask import Flask

from gateway import create_app, db, logs, metrics
from gateway.ingest import partition
from gateway.ingest.ledger import RUN, Ledger, Overtaken

log = logging.getLogger(__name__)

# Applying costs about four times as much a record as storing (bench/registry_apply.py) and
# shares the store process's interpreter lock with it: while messages flow it takes a share
# of the time and pauses between its transactions, so storing finds the lock free. At a
# steady load half (~6,000 records/s: bags that fell behind a flood catch up while the fleet
# keeps scanning); in a flood (a fleet reconnecting, backlogs draining) a tenth, the rest goes
# to acknowledging it.
FLOOD_RATE = 2_000  # records/s arriving above which applying gets APPLY_SHARE_FLOODED
RATE_WINDOW = 0.5  # seconds over which the arriving rate is counted
APPLY_BUSY = 0.010  # seconds per applying transaction while messages flow
APPLY_SHARE = 0.5
APPLY_SHARE_FLOODED = 0.1
QUIET = 0.2  # seconds without a commit: messages have paused, apply flat out
APPLY_IDLE = 0.020  # seconds per applying transaction then
# Lagging devices per applying transaction, taken in turn. Its queries name every device it is
# given (read ahead, still behind?): with all of a fleet's lagging devices in one, 3,000 of
# them at a steady 1,000 records/s from random devices, PostgreSQL spent 80 % of a core on
# those queries and a transaction took far longer than its budget (docs/benchmarks.md, "A
# fleet of handhelds"). A busy transaction reads ahead APPLY_RECORDS of their records, so a
# much larger turn only lengthens those queries: 10,000 devices at 1,000 records/s, 200 a
# turn took 6.5 ms to read ahead and 6.9 ms to ask which are still behind, 50 a turn 4.3 and
# 3.3 ms, and applied 17,091 records in the first 90 s against 13,295.
APPLY_DEVICES = 50
# Records read ahead (and prefetched for the registry) per applying transaction while
# messages flow, about what APPLY_BUSY applies: with the ledger's 200 a transaction
# prefetched the bags and parcels of 200 records, applied 20-40 and took ~50 ms instead of 10
# (3,000 devices at 1,000 records/s; docs/benchmarks.md). Flat out (APPLY_IDLE) the ledger's.
APPLY_RECORDS = 50
RETRY_WAIT = 1.0  # seconds before applying again after the database failed
# Seconds between looks in the database for devices whose stored records nobody applies: an
# instance killed after acknowledging a flood leaves such records behind, and in a shared
# subscription those devices may never send to this instance.
LAGGING_SCAN = 5.0
PARENT_CHECK = 0.2  # seconds without a note between looks whether the store process lives
STOP_WAIT = 5.0  # seconds the applier gets to finish its transaction when told to stop


class Turns:
    """Storing and applying write one at a time on SQLite, storing first when both wait.

    SQLite takes one writer at a time, and a transaction that has read before another's commit
    cannot write at all (SQLITE_BUSY_SNAPSHOT, without waiting): an applying transaction reads
    ahead before it writes. PostgreSQL needs no turns (rows locked, ledger `_settle`).
    """

    def __init__(self, serial: bool):
        self.serial = serial
        self._lock = threading.Lock()
        self._storing_waits = 0  # changed by storing's thread only

    @contextmanager
    def storing(self) -> Iterator[None]:
        if not self.serial:
            yield
            return
        self._storing_waits += 1
        with self._lock:
            self._storing_waits -= 1
            yield

    @contextmanager
    def applying(self) -> Iterator[None]:
        if not self.serial:
            yield
            return
        while self._storing_waits:
            time.sleep(0.001)
        with self._lock:
            yield


class Applier:
    """The devices with stored records to apply, and the loop that applies them.

    `behind()` is called by storing after each commit; `start()` applies until `stop()`, in a
    process of its own (then `behind()` sends its notes there) or in a thread. Tests call
    `step()` and `apply_turn()` themselves.
    """

    def __init__(self, app: Flask):
        self.app = app
        # Partitioned among instances (gateway/ingest/partition.py): this instance applies
        # the lagging devices of the buckets it holds, not the others'; a dead instance's
        # devices are applied by their next owner. Otherwise (None) every lagging device.
        self._instance = (
            partition.instance_name(app.config)
            if app.config.get("MQTT_SHARE") and app.config.get("MQTT_DISPATCH") == "partition"
            else None
        )
        self.ledger = Ledger()
        self.turns = Turns(app.config["DATABASE_URL"].startswith("sqlite"))
        self._lagging: set[str] = set()
        self._fresh: set[str] = set()  # devices behind() named since the turn began
        self._apply_after = ""  # the lagging devices after this id are the next to apply
        self._changed = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen | None = None
        self._notes: Connection | None = None  # to the applier's process
        self._stored_at = 0.0  # when storing last committed records
        self._window = (0.0, 0)  # (start, records) of the arriving rate's window
        self._flooded = False  # more than FLOOD_RATE arrived in the last full window
        self._scanned_at = 0.0

    @property
    def lagging(self) -> set[str]:
        with self._changed:
            return set(self._lagging)

    def behind(self, device_ids: Iterable[str], records: int) -> None:
        """After a commit: these devices have stored records to apply (`records` in all)."""
        if self._notes is not None:
            try:
                self._notes.send((list(device_ids), records))
            except OSError:  # it died; the next one finds what waits (its first scan)
                log.error("the applier's process is gone; starting another")
                self._spawn()
            return
        with self._changed:
            self._lagging.update(device_ids)
            self._fresh.update(device_ids)
            self._stored_at = time.monotonic()
            self._count_arriving(records)
            self._changed.notify()

    def start(self) -> None:
        if self.turns.serial:
            self.start_thread()
        else:
            self._spawn()

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="applier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the transaction in hand (rolled back if the process ends first)."""
        if self._notes is not None:
            self._notes.close()  # the applier's process reads the end and stops
            self._notes = None
        if self._process is not None:
            try:
                self._process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                self._process.terminate()
                self._process.wait()
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)

    def _spawn(self) -> None:
        notes_in, notes_out = os.pipe()
        # A program of its own (ps shows `-m gateway.ingest.applier`), on this app's database.
        env = dict(os.environ, BAGSCAN_DATABASE_URL=self.app.config["DATABASE_URL"])
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gateway.ingest.applier", str(notes_in)],
            pass_fds=(notes_in,),
            env=env,
        )
        os.close(notes_in)
        if self._notes is not None:
            self._notes.close()
        self._notes = Connection(notes_out, readable=False)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and not self._lagging and not self._scan_due():
                    self._changed.wait(max(0.0, LAGGING_SCAN - self._since_scan()))
                if self._stopping:
                    return
            pause = self.step()
            if pause:
                with self._changed:
                    self._changed.wait_for(lambda: self._stopping, pause)

    def step(self) -> float:
        """One applying transaction for the next turn of lagging devices (and the database's
        look for lagging devices when due); returns the pause before the next one."""
        if self._scan_due():
            self._find_lagging()
        with self._changed:
            if not self._lagging:
                return 0.0
            flowing = time.monotonic() - self._stored_at <= QUIET
            flooded = self._flooded
        if not flowing:
            self.apply_turn(APPLY_IDLE)
            return 0.0
        self.apply_turn(APPLY_BUSY, APPLY_RECORDS)
        share = APPLY_SHARE_FLOODED if flooded else APPLY_SHARE
        return APPLY_BUSY * (1 - share) / share

    def apply_turn(self, seconds: float, read_ahead: int = RUN) -> int:
        """Apply the next turn's records for about `seconds`; returns how many."""
        turn = self._next_turn()
        try:
            with self.turns.applying(), db.transaction(self.app) as session:
                until = time.monotonic() + seconds
                applied = self.ledger.apply(session, turn, until=until, read_ahead=read_ahead)
                behind = set(self.ledger.lagging(session, turn)) if turn else set()
        except Overtaken as why:
            log.info("applying again: %s", why)  # rolled back; the next turn reads anew
            return 0
        except Exception:  # noqa: BLE001 - retried on the next round
            log.exception("applying records failed; retrying")
            time.sleep(RETRY_WAIT)
            return 0
        with self._changed:
            # A device stored again since the turn began stays: its records may have been
            # committed after this transaction looked.
            self._lagging -= turn - behind - self._fresh
        metrics.RECORDS_APPLIED.inc(applied)
        metrics.RECORDS_QUARANTINED.inc(self.ledger.newly_quarantined())
        return applied

    def _next_turn(self) -> set[str]:
        """Up to APPLY_DEVICES lagging devices, in id order from where the last turn ended."""
        with self._changed:
            ids = sorted(self._lagging)
            start = bisect.bisect_right(ids, self._apply_after)
            turn = (ids[start:] + ids[:start])[:APPLY_DEVICES]
            self._apply_after = turn[-1] if turn else ""
            self._fresh = set()
            return set(turn)

    def _count_arriving(self, records: int) -> None:
        start, seen = self._window
        now = time.monotonic()
        if now - start < RATE_WINDOW:
            self._window = (start, seen + records)
        else:
            self._flooded = seen > FLOOD_RATE * (now - start)
            self._window = (now, records)

    def _since_scan(self) -> float:
        return time.monotonic() - self._scanned_at

    def _scan_due(self) -> bool:
        return self._since_scan() > LAGGING_SCAN

    def _find_lagging(self) -> None:
        self._scanned_at = time.monotonic()
        try:
            with db.transaction(self.app) as session:
                found = set(self.ledger.lagging(session))
                if self._instance is not None:
                    held = partition.held_by(session, self._instance)
                    found = {d for d in found if partition.bucket_of(d) in held}
        except Exception:  # noqa: BLE001
            log.exception("could not look for unapplied records")
            return
        with self._changed:
            self._lagging |= found


def main(notes: Connection) -> None:
    """The applier's process: notes (device ids, records) from the store process's pipe, read
    here so that its sends never wait, applied by the thread; stop when the pipe ends or the
    store process is gone."""
    logs.setup()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the store process stops us in order
    applier = Applier(create_app())
    applier.start_thread()
    parent = os.getppid()
    try:
        while True:
            if notes.poll(PARENT_CHECK):
                applier.behind(*notes.recv())
            elif os.getppid() != parent:
                log.info("store process gone; applier stops")
                break
    except (EOFError, OSError):
        pass
    applier.stop()


if __name__ == "__main__":
    main(Connection(int(sys.argv[1]), writable=False))
