"""Idempotent storage of device records, their times, and their in-order application to bags.

Two steps, both run by the ingest worker (docs/protocol.md, "Gateway side"):

1. `store()` inserts a batch of records, unique on (device, seq), and returns per device the
   highest seq up to which every record is stored: the cumulative acknowledgement, sent
   after this commit. Sequence numbers never repeat on a device (the journal keeps its last
   seq across boots and compaction), so (device, seq) is at least as strict as
   (device, boot, seq) and lets one index decide "seen before?".
2. `apply()` hands stored records to the bag registry strictly in sequence order, a run of
   up to RUN records at a time under one savepoint (`registry.batch`), with one registry
   prefetch for the next records of every device of the call. If anything in the run raises, the savepoint is rolled back and the
   run applied again one record per savepoint, as before batching: a record the registry
   cannot apply is then quarantined (logged, listed in the device's status and skipped),
   so one bad record never blocks a device forever, and the others apply as if alone.

At a steady load records are applied in the transaction that stores them, for up to a
few ms, so an acknowledged record is usually on the admin page already; a flood (a device back after days
offline, a fleet reconnecting) is stored and acknowledged at full speed and applied right
behind it (gateway/ingest_store.py decides which).
"""

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from firmware.app import wire_schema
from gateway import registry
from gateway.models import Device, Record

log = logging.getLogger(__name__)

CLOCK_SKEW_LIMIT_S = 120  # a device clock further off than this is flagged on the admin page
# A synced anchor is renewed at most this often (ticks, ms): a device's tick count and wall
# clock run from the same crystal, so a minute-old anchor places a record as well as a new
# one, and a device row is not rewritten for every batch it sends.
ANCHOR_RENEW_MS = 60_000
LAST_SEEN_STEP = timedelta(seconds=1)  # devices.last_seen is written at most this often
QUARANTINE_KEPT = 50  # seqs listed in the device status; the count keeps growing
_HALF_TICKS = wire_schema.TICKS_PERIOD // 2
_ANCHORS_KEPT = 4  # boots whose clock anchor we remember
# Records applied under one savepoint and one registry prefetch. Larger runs save little
# (the prefetch is a few IN queries) and cost more when a record fails and the run is redone.
RUN = 200
# What the registry reads of a record, loaded as plain rows (cheaper than Record objects).
_APPLY_COLUMNS = (Record.id, Record.seq, Record.kind, Record.body, Record.occurred_at)


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


def occurred_at(rec: dict, received_at: datetime, anchors: dict | None = None) -> datetime:
    """The time of a device action, rebuilt from its boot, ticks and the device's last sync.

    Synced records (q=1) carry the wall clock the gateway set. For unsynced ones (q=0: the
    device had not heard from us since it booted) the offset comes from the same boot: a
    synced record of that boot, or the status the device sent when it came online; the
    ticks between the anchor and the record give the time. With no anchor at all the
    receipt time is the best we know.
    """
    if rec["q"] and rec["w"]:
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
        self._stored: dict[str, int] = {}
        self.quarantined = 0

    def forget(self) -> None:
        self._stored.clear()

    def store(
        self,
        session: Session,
        records: dict[str, list[dict]],
        statuses: dict[str, dict],
        received_at: datetime,
    ) -> dict[str, int]:
        """Store valid records and statuses of many devices; returns the ack seq per device.

        The caller commits. Devices are locked in id order, so gateways sharing a
        subscription neither deadlock nor interleave one device's records.
        """
        ids = sorted(set(records) | set(statuses))
        if not ids:
            return {}
        found = session.scalars(
            select(Device).where(Device.id.in_(ids)).order_by(Device.id).with_for_update()
        ).all()
        by_id = {d.id: d for d in found}
        for device_id in ids:
            if device_id not in by_id:
                log.warning("messages from unknown device %s dropped", device_id)
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        rows: list[dict] = []
        acks: dict[str, int] = {}
        for device in found:
            status = dict(device.status or {})
            anchors = _anchors(device)
            if device.id in statuses:
                _take_status(status, anchors, statuses[device.id], received_at)
                device.online = statuses[device.id]["online"]
            if device.last_seen is None or received_at - device.last_seen >= LAST_SEEN_STEP:
                device.last_seen = received_at
            recs = records.get(device.id)
            frontier = self._frontier(session, device)
            if recs:
                fresh = self._rows(device, recs, frontier, anchors, received_at)
                rows.extend(fresh)
                frontier = self._advance(session, device.id, frontier, [r["seq"] for r in fresh])
            status["anchors"] = anchors
            if status != device.status:  # an unchanged row is not written again
                device.status = status
            acks[device.id] = frontier
        if rows:
            # A Core insert on the table: the ORM's bulk path costs more per row than the
            # insert itself, and nothing here needs Record objects.
            session.execute(insert(Record.__table__).on_conflict_do_nothing(), rows)
        return acks

    def _rows(
        self, device: Device, recs: list[dict], frontier: int, anchors: dict, received_at: datetime
    ) -> list[dict]:
        recs = sorted(recs, key=lambda r: r["s"])
        # Anchors from this batch first: an unsynced record may be followed by synced ones.
        for rec in recs:
            if rec["q"] and rec["w"]:
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
                    "clock_ok": bool(rec["q"]),
                    "body": rec,
                    "received_at": received_at,
                    "occurred_at": at,
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

    def apply(self, session: Session, device_ids: Iterable[str], until: float = 0) -> int:
        """Apply each device's stored records that follow its applied_seq, in order.

        until: stop at this time.monotonic() (0: no limit), so acknowledgements never wait
        long. The caller commits.
        """
        started = time.monotonic()
        ids = sorted(set(device_ids))
        ahead = self._ahead(session, ids)
        # One Batch for every device's runs, prefetched for all their next records at once:
        # a prefetch costs ~2 ms of queries however short the run, and at a steady load each
        # device has a record or two waiting (docs/benchmarks.md).
        shared = registry.Batch(session, None)
        shared.prefetch(r.body for rows in ahead.values() for r in rows)
        if until:  # the budget is for applying; reading ahead does not count against it
            until += time.monotonic() - started
        done = 0
        for device_id in ids:
            # At least one record per call, whatever the prefetch took: under load it can
            # take the whole budget, and a call that applies nothing would be repeated forever.
            if until and done and time.monotonic() > until:
                break
            device = session.execute(
                select(Device).where(Device.id == device_id).with_for_update()
            ).scalar_one_or_none()
            if device is None:
                continue
            applied = device.applied_seq
            while True:
                # Read before the lock: another gateway may have applied some since.
                rows = [r for r in ahead.pop(device_id, ()) if r.seq > applied]
                more = not rows or len(rows) == RUN  # what ahead held may not be all
                if not rows:
                    rows = session.execute(
                        select(*_APPLY_COLUMNS)
                        .where(Record.device_id == device_id, Record.seq > applied)
                        .order_by(Record.seq)
                        .limit(RUN)
                    ).all()
                    more = len(rows) == RUN
                run = []
                for record in rows:
                    if record.seq != applied + len(run) + 1:
                        break  # a gap: the device sends the missing record again
                    run.append(record)
                if not run:
                    break
                n = self._apply_run(session, device, run, until, shared)
                applied = run[n - 1].seq
                done += n
                if n < len(rows) or not more:
                    break  # out of time, at a gap, or nothing more stored
                if until and time.monotonic() > until:
                    break
            if applied != device.applied_seq:
                device.applied_seq = applied
                session.flush()
        return done

    def _ahead(self, session: Session, device_ids: list[str]) -> dict[str, list]:
        """The devices' next stored records, up to RUN in all, by device."""
        ahead: dict[str, list] = {}
        if device_ids:
            rows = session.execute(
                select(*_APPLY_COLUMNS, Record.device_id)
                .join(Device, Device.id == Record.device_id)
                .where(Device.id.in_(device_ids), Record.seq > Device.applied_seq)
                .order_by(Record.device_id, Record.seq)
                .limit(RUN)
            )
            for row in rows:
                ahead.setdefault(row.device_id, []).append(row)
        return ahead

    def _apply_run(
        self, session: Session, device: Device, run: list, until: float, shared: registry.Batch
    ) -> int:
        """Apply records in order until `until` (at least one); returns how many."""
        tried = 0
        try:
            with session.begin_nested(), registry.batch(session, device, run, shared):
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
            self._quarantine(device, record, err)
        except Exception as err:  # noqa: BLE001 - any registry failure must not block the device
            savepoint.rollback()
            self._quarantine(device, record, err)

    def _quarantine(self, device: Device, record: Record, err: Exception) -> None:
        self.quarantined += 1
        log.error(
            "device %s record %d (%s) quarantined: %s: %s",
            device.id,
            record.seq,
            record.kind,
            type(err).__name__,
            err,
        )
        status = dict(device.status or {})
        seqs = list(status.get("quarantined") or [])
        seqs.append(record.seq)
        status["quarantined"] = seqs[-QUARANTINE_KEPT:]
        status["quarantined_count"] = int(status.get("quarantined_count") or 0) + 1
        device.status = status


def _take_status(status: dict, anchors: dict, body: dict, received_at: datetime) -> None:
    """Merge a device status message (already validated) into the stored status."""
    from gateway.devices import STATUS_FIELDS

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
        if body.get("q") and isinstance(wall, int) and wall > 0:
            learn_anchor(anchors, boot, ticks, float(wall), "rec")
        else:
            learn_anchor(anchors, boot, ticks, now, "rx")
    status["status_at"] = received_at.isoformat()
