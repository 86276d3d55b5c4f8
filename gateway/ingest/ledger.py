"""Idempotent storage of device records, their times, and their in-order application to bags.

Two steps, both run by the ingest worker (docs/protocol.md, "Gateway side"):

1. `store()` inserts a batch of records, unique on (device, seq), and returns per device the
   highest seq up to which every record is stored: the cumulative acknowledgement, sent
   after this commit. Sequence numbers never repeat on a device (the journal keeps its last
   seq across boots and compaction), so (device, seq) is at least as strict as
   (device, boot, seq) and lets one index decide "seen before?".
2. `apply()` hands stored records to the bag registry, each device's strictly in sequence
   order: the next records of every device of the call (up to RUN in all) are read ahead,
   prefetched for the registry at once and applied under one savepoint and one
   `registry.batch` (memberships written, late bags replayed once). If anything raises, the
   savepoint is rolled back and the devices applied one by one, a run of up to RUN records
   per savepoint, then one record per savepoint: a record the registry cannot apply is then
   quarantined (logged, listed in the device's status and skipped), so one bad record never
   blocks a device forever, and the others apply as if alone.

Records are applied right behind their acknowledgement, by the applier beside storing
(gateway/ingest/applier.py: a process of its own on PostgreSQL, a thread on SQLite): a flood (a device back after days offline, a fleet reconnecting)
is stored and acknowledged at full speed and never waits for the bag registry. Storing locks
the rows of its devices (their status, last_seen); applying reads them without a lock and
writes applied_seq at the end of its transaction only where no one moved it meanwhile
(`Overtaken` otherwise), so the two never hold each other up for longer than a commit.
"""

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from gateway import logs
from gateway.ingest import registry
from gateway.models import Device, Record
from protocol import wire_schema

log = logging.getLogger(__name__)

CLOCK_SKEW_LIMIT_S = 120  # a device clock further off than this is flagged on the admin page
# A synced wall time is trusted only inside this window around the receipt: never ahead of
# the gateway's clock by more than the skew limit (a record cannot come from the future),
# never older than a journal plausibly waits offline (product choice). Outside it the time
# is rebuilt as if the device had not been synced, and the record is flagged.
RECORD_AGE_LIMIT = timedelta(days=30)
# A synced anchor is renewed at most this often (ticks, ms): a device's tick count and wall
# clock run from the same crystal, so a minute-old anchor places a record as well as a new
# one, and a device row is not rewritten for every batch it sends.
ANCHOR_RENEW_MS = 60_000
LAST_SEEN_STEP = timedelta(seconds=1)  # devices.last_seen is written at most this often
QUARANTINE_KEPT = 50  # seqs listed in the device status; the count keeps growing
ERROR_TEXT = 300  # characters of an error kept with a quarantined record
RAW_TEXT = 2000  # characters of a record kept when the database cannot store it
_HALF_TICKS = wire_schema.TICKS_PERIOD // 2
_ANCHORS_KEPT = 4  # boots whose clock anchor we remember
# Records applied under one savepoint and one registry prefetch. Larger runs save little
# (the prefetch is a few IN queries) and cost more when a record fails and the run is redone.
RUN = 200
# What the registry reads of a record, loaded as plain rows (cheaper than Record objects).
_APPLY_COLUMNS = (Record.id, Record.seq, Record.kind, Record.body, Record.occurred_at)


class Overtaken(Exception):
    """Another instance applied some of these devices' records since this transaction read
    them (a partition handing its devices over): the caller rolls the transaction back and
    applies again from the new applied_seq. Nothing is applied twice."""


def ticks_diff(a: int, b: int) -> int:
    """a - b in ms for MicroPython ticks that wrap at 2**30 (valid within +-6.2 days)."""
    return (a - b + _HALF_TICKS) % wire_schema.TICKS_PERIOD - _HALF_TICKS


# ---- time -------------------------------------------------------------------------------


def _anchors(device: Device) -> dict:
    return dict((device.status or {}).get("anchors") or {})


def learn_anchor(anchors: dict, boot: int, ticks: int, epoch: float, source: str) -> None:
    """Remember that on `boot`, tick count `ticks` was at `epoch` (seconds, UTC).

    A synced record ("rec") beats a status receipt ("rx"): the first is the device's own
    clock after the gateway set it, the second is when a possibly queued status reached us.
    """
    key = str(boot)
    old = anchors.get(key)
    if old and old[2] == "rec":
        if source == "rx" or abs(ticks_diff(ticks, old[0])) < ANCHOR_RENEW_MS:
            return
    anchors[key] = [ticks, epoch, source]
    if len(anchors) > _ANCHORS_KEPT:
        for stale in sorted(anchors, key=int)[: len(anchors) - _ANCHORS_KEPT]:
            del anchors[stale]


def wall_trusted(wall: int, received_at: datetime) -> bool:
    """Whether a synced record's wall time lies in the window around its receipt."""
    now = received_at.timestamp()
    return now - RECORD_AGE_LIMIT.total_seconds() <= wall <= now + CLOCK_SKEW_LIMIT_S


def occurred_at(rec: dict, received_at: datetime, anchors: dict | None = None) -> datetime:
    """The time of a device action, rebuilt from its boot, ticks and the device's last sync.

    Synced records (q=1) carry the wall clock the gateway set. For unsynced ones (q=0: the
    device had not heard from us since it booted) the offset comes from the same boot: a
    synced record of that boot, or the status the device sent when it came online; the
    ticks between the anchor and the record give the time. With no anchor at all the
    receipt time is the best we know.
    """
    if rec["q"] and rec["w"] and wall_trusted(rec["w"], received_at):
        return datetime.fromtimestamp(rec["w"], UTC)
    anchor = (anchors or {}).get(str(rec["b"]))
    if anchor:
        return datetime.fromtimestamp(anchor[1] + ticks_diff(rec["t"], anchor[0]) / 1000, UTC)
    return received_at


# ---- storing ----------------------------------------------------------------------------


class Ledger:
    """Per gateway process: remembers each device's stored frontier to save queries.

    The database stays the truth: a stale frontier (another gateway stored more) only makes
    us look further, never acknowledge a record that is not stored.
    """

    def __init__(self) -> None:
        # Rows the last store() inserted, for the records-stored metric once it commits (a
        # record above a gap that comes again is tried, and counted, again).
        self.last_stored = 0
        self._stored: dict[str, int] = {}
        self.quarantined = 0
        self._quarantined_told = 0  # self.quarantined as newly_quarantined() last told it

    def forget(self) -> None:
        self._stored.clear()

    def newly_quarantined(self) -> int:
        """Records quarantined since the last call: for the metric, after a commit."""
        new = self.quarantined - self._quarantined_told
        self._quarantined_told = self.quarantined
        return new

    def store(
        self,
        session: Session,
        records: dict[str, list[dict]],
        statuses: dict[str, dict],
        received_at: datetime,
    ) -> dict[str, int]:
        """Store valid records and statuses of many devices; returns the ack seq per device.

        The caller commits. Devices are locked in id order, so gateways sharing a
        subscription neither deadlock nor interleave one device's records. FOR NO KEY UPDATE,
        not FOR UPDATE: applying's inserts of rows that name a device (scans, disagreements)
        take a key-share lock on its row until their commit, which FOR UPDATE would wait for,
        and the two would deadlock with `_settle` (PostgreSQL breaks that after a second).
        """
        self.last_stored = 0
        ids = sorted(set(records) | set(statuses))
        if not ids:
            return {}
        found = session.scalars(
            select(Device)
            .where(Device.id.in_(ids))
            .order_by(Device.id)
            .with_for_update(key_share=True)
        ).all()
        by_id = {d.id: d for d in found}
        for device_id in ids:
            if device_id not in by_id:
                log.warning(
                    "messages from unknown device %s dropped",
                    device_id,
                    extra=logs.about(device_id),
                )
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        rows: list[dict] = []
        acks: dict[str, int] = {}
        seen: list[str] = []  # devices whose last_seen moves
        for device in found:
            status = dict(device.status or {})
            anchors = _anchors(device)
            if device.id in statuses:
                _take_status(status, anchors, statuses[device.id], received_at)
                _note_config_behind(status, device.config_version, received_at)
                device.online = statuses[device.id]["online"]
            if device.last_seen is None or received_at - device.last_seen >= LAST_SEEN_STEP:
                seen.append(device.id)
                set_committed_value(device, "last_seen", received_at)  # written below
            recs = records.get(device.id)
            frontier = self._frontier(session, device)
            if recs:
                fresh = self._rows(device, recs, frontier, anchors, received_at)
                _flag_clock(status, fresh)
                rows.extend(fresh)
                frontier = self._advance(session, device.id, frontier, [r["seq"] for r in fresh])
            status["anchors"] = anchors
            if status != device.status:  # an unchanged row is not written again
                device.status = status
            acks[device.id] = frontier
        if seen:
            # One statement for all of them: written by the ORM it was one UPDATE a device,
            # a third of the store process's time at 10,000 handhelds sending 1,000 records/s
            # (py-spy; docs/benchmarks.md, "A fleet of handhelds").
            table = Device.__table__
            session.execute(
                table.update().where(table.c.id.in_(seen)).values(last_seen=received_at)
            )
        if rows:
            # A Core insert on the table: the ORM's bulk path costs more per row than the
            # insert itself, and nothing here needs Record objects.
            session.execute(insert(Record.__table__).on_conflict_do_nothing(), rows)
        self.last_stored = len(rows)
        return acks

    def _rows(
        self, device: Device, recs: list[dict], frontier: int, anchors: dict, received_at: datetime
    ) -> list[dict]:
        recs = sorted(recs, key=lambda r: r["s"])
        # Anchors from this batch first: an unsynced record may be followed by synced ones.
        for rec in recs:
            if rec["q"] and rec["w"] and wall_trusted(rec["w"], received_at):
                learn_anchor(anchors, rec["b"], rec["t"], float(rec["w"]), "rec")
        rows = []
        last_seq = frontier
        last_at: dict[int, datetime] = {}
        for rec in recs:
            seq = rec["s"]
            if seq <= last_seq:  # stored before, or twice in this batch
                continue
            last_seq = seq
            at = occurred_at(rec, received_at, anchors)
            # The device's order is the truth: within a boot, time never runs backwards
            # (a synced record has whole seconds, an unsynced one milliseconds).
            prev = last_at.get(rec["b"])
            if prev is not None and at < prev:
                at = prev
            last_at[rec["b"]] = at
            rows.append(
                {
                    "device_id": device.id,
                    "seq": seq,
                    "boot": rec["b"],
                    "kind": rec["k"],
                    "ticks": rec["t"],
                    "wall": rec["w"],
                    "clock_ok": bool(rec["q"]) and wall_trusted(rec["w"], received_at),
                    "body": rec,
                    "received_at": received_at,
                    "occurred_at": at,
                    "bag_no": _bag_no(rec),
                }
            )
        return rows

    def _frontier(self, session: Session, device: Device) -> int:
        known = self._stored.get(device.id, 0)
        if known >= device.applied_seq:
            return known
        return self._walk(session, device.id, device.applied_seq)

    def _advance(self, session: Session, device_id: str, frontier: int, seqs: list[int]) -> int:
        for seq in seqs:
            if seq != frontier + 1:
                # A gap in what we hold: what lies beyond may already be stored (a resend,
                # another gateway). The database decides.
                return self._walk(session, device_id, frontier, set(seqs))
            frontier = seq
        self._stored[device_id] = frontier
        return frontier

    def _walk(self, session: Session, device_id: str, frontier: int, also: Iterable = ()) -> int:
        extra = set(also)
        while True:
            seqs = session.scalars(
                select(Record.seq)
                .where(Record.device_id == device_id, Record.seq > frontier)
                .order_by(Record.seq)
                .limit(5000)
            ).all()
            merged = sorted(extra.union(seqs))
            moved = False
            for seq in merged:
                if seq <= frontier:
                    continue
                if seq != frontier + 1:
                    break
                frontier = seq
                moved = True
            if not moved or len(seqs) < 5000:
                break
        self._stored[device_id] = frontier
        return frontier

    # ---- applying ---------------------------------------------------------------------

    def lagging(self, session: Session, device_ids: Iterable[str] | None = None) -> list[str]:
        """Devices whose next record is stored but not applied (work for apply())."""
        query = (
            select(Record.device_id)
            .join(Device, Device.id == Record.device_id)
            .where(Record.seq == Device.applied_seq + 1)
        )
        if device_ids is not None:
            query = query.where(Device.id.in_(list(device_ids)))
        return list(session.scalars(query))

    def apply(
        self, session: Session, device_ids: Iterable[str], until: float = 0, read_ahead: int = RUN
    ) -> int:
        """Apply each device's stored records that follow its applied_seq, in order.

        until: stop at this time.monotonic() (0: no limit), so acknowledgements never wait
        long. read_ahead: records read ahead and prefetched for all devices at once, about
        what the time allows (a prefetch for records the time then cuts off is lost). The
        caller commits, or rolls back on Overtaken.
        """
        started = time.monotonic()
        ids = sorted(set(device_ids))
        ahead, complete = self._ahead(session, ids, read_ahead)
        # One Batch for every device's runs, prefetched for all their next records at once:
        # a prefetch costs ~2 ms of queries however short the run, and at a steady load each
        # device has a record or two waiting (docs/benchmarks.md).
        shared = registry.Batch(session)
        shared.prefetch(r.body for rows in ahead.values() for r in rows)
        if until:  # the budget is for applying; reading ahead does not count against it
            until += time.monotonic() - started
        # Device id: (device, applied_seq as read when its records were, the new one). Read
        # then, not from the device at the end: a rolled-back savepoint that changed the
        # device (a refused role) expires it, and it would load another instance's value.
        moved: dict[str, tuple[Device, int, int]] = {}
        done, rest = self._apply_together(session, complete, ahead, until, shared, moved)
        for device_id in (d for d in ids if d in rest or d not in complete):
            # At least one record per call, whatever the prefetch took: under load it can
            # take the whole budget, and a call that applies nothing would be repeated forever.
            if until and done and time.monotonic() > until:
                break
            device = session.get(Device, device_id)
            if device is None:
                continue
            read = applied = device.applied_seq
            while True:
                rows = [r for r in ahead.pop(device_id, ()) if r.seq > applied]
                more = not rows or device_id not in complete  # what ahead held may not be all
                if not rows:
                    rows = session.execute(
                        select(*_APPLY_COLUMNS)
                        .where(Record.device_id == device_id, Record.seq > applied)
                        .order_by(Record.seq)
                        .limit(RUN)
                    ).all()
                    more = len(rows) == RUN
                run = _contiguous(rows, applied)
                if not run:
                    break
                n = self._apply_run(session, device, run, until, shared)
                applied = run[n - 1].seq
                done += n
                if n < len(rows) or not more:
                    break  # out of time, at a gap, or nothing more stored
                if until and time.monotonic() > until:
                    break
            if applied != read:
                moved[device_id] = (device, read, applied)
        _settle(session, moved)
        return done

    def _apply_together(
        self,
        session: Session,
        device_ids: list[str],
        ahead: dict[str, list],
        until: float,
        shared: registry.Batch,
        moved: dict[str, tuple[Device, int, int]],
    ) -> tuple[int, set[str]]:
        """Apply the read-ahead runs of many devices under one lock query, one savepoint and
        one registry Batch (one write of the memberships, one replay of late bags).

        At a steady load most devices have a record or two waiting; a savepoint, a lock query,
        a flush of applied_seq and a write of the memberships per device cost more than
        applying them (issue 20: ~1 ms a device). Returns the records applied and the devices
        left to apply one by one: those past the time budget, and all of them if anything in
        the runs raised (the one-by-one path then finds and quarantines the record that fails).
        The devices applied go into `moved`.
        """
        if not device_ids:
            return 0, set()
        devices = session.scalars(
            select(Device).where(Device.id.in_(device_ids)).order_by(Device.id)
        ).all()
        runs = []
        settled = set(device_ids)  # nothing to apply: applied by another instance, or a gap
        for device in devices:
            run = _contiguous(
                [r for r in ahead[device.id] if r.seq > device.applied_seq], device.applied_seq
            )
            if run:
                runs.append((device, run))
                settled.discard(device.id)
        taken: list[tuple[Device, list]] = []
        try:
            with session.begin_nested(), registry.batch(session, shared, ()):
                for device, run in runs:
                    if until and taken and time.monotonic() > until:
                        break
                    for record in run:
                        registry.apply(session, device, record)
                    taken.append((device, run))
        except (OperationalError, DBAPIError) as err:
            if isinstance(err, OperationalError) or err.connection_invalidated:
                raise  # the database is away or locked: retry the batch later
            shared.forget()
            return 0, set(device_ids)
        except Exception:  # noqa: BLE001 - redone device by device, record by record
            shared.forget()
            return 0, set(device_ids)
        for device, run in taken:
            moved[device.id] = (device, run[0].seq - 1, run[-1].seq)  # runs follow applied_seq
            ahead.pop(device.id, None)
        done = settled | {device.id for device, _ in taken}
        return sum(len(run) for _, run in taken), set(device_ids) - done

    def _ahead(
        self, session: Session, device_ids: list[str], limit: int
    ) -> tuple[dict[str, list], list]:
        """The devices' next stored records, up to `limit` in all, by device; and the devices
        whose every stored record that follows is among them (all but the last listed when
        the limit cut the list short)."""
        ahead: dict[str, list] = {}
        if not device_ids:
            return ahead, []
        rows = session.execute(
            select(*_APPLY_COLUMNS, Record.device_id)
            .join(Device, Device.id == Record.device_id)
            .where(Device.id.in_(device_ids), Record.seq > Device.applied_seq)
            .order_by(Record.device_id, Record.seq)
            .limit(limit)
        ).all()
        for row in rows:
            ahead.setdefault(row.device_id, []).append(row)
        complete = list(ahead)
        if len(rows) == limit:
            complete.pop()
        return ahead, complete

    def _apply_run(
        self, session: Session, device: Device, run: list, until: float, shared: registry.Batch
    ) -> int:
        """Apply records in order until `until` (at least one); returns how many."""
        tried = 0
        try:
            with session.begin_nested(), registry.batch(session, shared, run):
                for record in run:
                    tried += 1
                    registry.apply(session, device, record)
                    if until and time.monotonic() > until:
                        break
            return tried
        except (OperationalError, DBAPIError) as err:
            if isinstance(err, OperationalError) or err.connection_invalidated:
                raise  # the database is away or locked: retry the batch later
        except Exception:  # noqa: BLE001, S110 - redone record by record below
            pass
        # Something in the run failed and was rolled back: one savepoint per record, so
        # exactly the record that fails is quarantined.
        shared.forget()
        for done, record in enumerate(run, 1):
            self._apply_one(session, device, record)
            if done >= tried and until and time.monotonic() > until:
                return done
        return len(run)

    def _apply_one(self, session: Session, device: Device, record: Record) -> None:
        savepoint = session.begin_nested()
        try:
            registry.apply(session, device, record)
            savepoint.commit()
        except (OperationalError, DBAPIError) as err:
            if isinstance(err, OperationalError) or err.connection_invalidated:
                raise  # the database is away or locked: retry the batch later
            savepoint.rollback()
            self._quarantine(session, device, record, err)
        except Exception as err:  # noqa: BLE001 - any registry failure must not block the device
            savepoint.rollback()
            self._quarantine(session, device, record, err)

    def _quarantine(self, session: Session, device: Device, record: Record, err: Exception) -> None:
        status = registry.lock_status(session, device)
        error = f"{type(err).__name__}: {err}"
        self._note_quarantine(device, status, record.seq, record.kind, error)

    def _note_quarantine(
        self, device: Device, status: dict, seq: int, kind: str, error: str
    ) -> None:
        self.quarantined += 1
        log.error(
            "device %s record %d (%s) quarantined: %s",
            device.id,
            seq,
            kind,
            error,
            extra=logs.about(device.id, seq),
        )
        seqs = list(status.get("quarantined") or [])
        seqs.append(seq)
        status["quarantined"] = seqs[-QUARANTINE_KEPT:]
        status["quarantined_count"] = int(status.get("quarantined_count") or 0) + 1
        status["last_quarantined"] = {"seq": seq, "kind": kind, "error": _printable(error)}
        device.status = status

    def quarantine(
        self, session: Session, device_id: str, rec: dict, error: str, received_at: datetime
    ) -> int:
        """Keep aside a valid record the database cannot store; returns the device's ack.

        In its place goes a record of kind registry.QUARANTINED holding the record as text
        and the error: its seq is stored, so the acknowledgement moves past it and the device
        goes on (docs/protocol.md: one bad record never blocks a device); the registry skips it.
        """
        device = session.scalars(
            select(Device).where(Device.id == device_id).with_for_update(key_share=True)
        ).one_or_none()
        if device is None:
            return 0
        seq = rec["s"]
        raw = json.dumps(rec, ensure_ascii=True, default=repr)[:RAW_TEXT]
        row = {
            "device_id": device_id,
            "seq": seq,
            "boot": 0,
            "kind": registry.QUARANTINED,
            "ticks": 0,
            "wall": 0,
            "clock_ok": False,
            "body": {"s": seq, "k": registry.QUARANTINED, "error": _printable(error), "raw": raw},
            "received_at": received_at,
            "occurred_at": received_at,
            "bag_no": None,
        }
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        stored = session.execute(
            insert(Record.__table__).on_conflict_do_nothing().returning(Record.__table__.c.id),
            [row],
        ).first()
        if stored is not None:  # not stored before (by another gateway)
            status = dict(device.status or {})  # locked above
            self._note_quarantine(device, status, seq, str(rec.get("k"))[:20], error)
        return self._advance(session, device_id, self._frontier(session, device), [seq])


def _settle(session: Session, moved: dict[str, tuple[Device, int, int]]) -> None:
    """Write the devices' new applied_seq, or raise Overtaken if another transaction moved one
    since this one read it. The rows are locked in id order, as storing locks them, and only
    now: storing a device's next records never waits for its applying (docs/protocol.md)."""
    if not moved:
        return
    ids = sorted(moved)
    table = Device.__table__
    locked = session.execute(
        select(table.c.id, table.c.applied_seq)
        .where(table.c.id.in_(ids))
        .order_by(table.c.id)
        .with_for_update(key_share=True)  # as storing locks them (Ledger.store)
    )
    now = {device_id: applied for device_id, applied in locked}
    overtaken = [d for d in ids if now.get(d) != moved[d][1]]
    if overtaken:
        raise Overtaken(f"{len(overtaken)} devices applied meanwhile, first {overtaken[0]}")
    session.execute(
        table.update()
        .where(table.c.id.in_(ids))
        .values(applied_seq=case({d: moved[d][2] for d in ids}, value=table.c.id))
    )
    for device, _, applied in moved.values():
        set_committed_value(device, "applied_seq", applied)  # written above, not by a flush


def _contiguous(rows: list, applied: int) -> list:
    """The rows that follow `applied` without a gap (a gap waits for the device's resend)."""
    run = []
    for record in rows:
        if record.seq != applied + len(run) + 1:
            break
        run.append(record)
    return run


def _bag_no(rec: dict) -> str | None:
    """The bag a record names (records.bag_no: a late record's bag is replayed from them)."""
    bag = rec.get("bag")
    return bag if isinstance(bag, str) else None


def _printable(text: str) -> str:
    """An error as ASCII text any column takes (a database error may quote the bad value)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:ERROR_TEXT]


def _flag_clock(status: dict, rows: list[dict]) -> None:
    """Synced records whose wall time was outside the window (stored with clock_ok false, their
    time rebuilt without it): counted in the device status with the last one, for the admin
    page and GET /api/devices."""
    untrusted = [r for r in rows if r["body"]["q"] and not r["clock_ok"]]
    if untrusted:
        count = int(status.get("clock_untrusted_count") or 0) + len(untrusted)
        status["clock_untrusted_count"] = count
        status["last_clock_untrusted"] = {"seq": untrusted[-1]["seq"], "w": untrusted[-1]["wall"]}


def _note_config_behind(status: dict, sent: int, received_at: datetime) -> None:
    """Since when the handheld has reported, while online, an older config version than it was
    sent ("behind_since"): the exceptions queue flags one behind for long (issue 17). A status
    that has caught up, or the last will (offline), clears it: the time counts while online."""
    taken = status.get("s")
    if status.get("online") is not True or not isinstance(taken, int) or taken >= sent:
        status.pop("behind_since", None)
    elif "behind_since" not in status:
        status["behind_since"] = received_at.isoformat()


def _take_status(status: dict, anchors: dict, body: dict, received_at: datetime) -> None:
    """Merge a device status message (already validated) into the stored status."""
    from gateway.services.devices import STATUS_FIELDS

    for name in STATUS_FIELDS:
        if name in body:
            status[name] = body[name]
    now = received_at.timestamp()
    wall = body.get("wall")
    if body["online"] and isinstance(wall, int) and wall > 0:
        skew = wall - int(now)
        status["clock_skew_s"] = skew
        status["clock_off"] = abs(skew) > CLOCK_SKEW_LIMIT_S
    boot, ticks = body.get("boot"), body.get("t")
    if body["online"] and isinstance(boot, int) and isinstance(ticks, int):
        if body.get("q") and isinstance(wall, int) and wall_trusted(wall, received_at):
            learn_anchor(anchors, boot, ticks, float(wall), "rec")
        else:
            learn_anchor(anchors, boot, ticks, now, "rx")
    status["status_at"] = received_at.isoformat()
