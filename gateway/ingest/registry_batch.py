"""What a run of records reads from and writes to the bag tables, loaded in a few queries.

The registry (gateway/ingest/registry.py) asks for bags by number, a bag's members, a parcel, the
bag a parcel was last put into, an account's stores. Asked record by record that is several
queries each, and every query first flushes the bags changed by the record before. A Batch
answers from dicts instead: `prefetch` loads what a run of records names (its bags, their
members, the parcels, the parcels' earlier bags) in a handful of IN queries, and memberships
are written in one executemany at `flush`. Anything not prefetched is loaded on first use
(after writing the pending memberships, so the database and the dicts agree), so a Batch
gives the answers the per-record queries gave, only faster.

Bags, their history, disagreements, weighings and scans stay ORM objects: there is one
bag per ~300 records, and the session's identity map already shares them.

A Batch also carries what a run found out of order: the bags a late record names (`dirty`),
replayed when the run ends (gateway/ingest/replay.py), and how far each device's records are
applied (`applied`). A replay folds records through a Batch of its own (`folding`), in which
the replayed bags are "unborn" until their first bagging record comes round again.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import Row, delete, func, inspect, select
from sqlalchemy.orm import Session

from gateway.models import Bag, BagParcel, Disagreement, Parcel, Record, Store

# What the registry reads of a parcel, as a plain row: ORM objects cost more to build than the
# rest of applying a record.
_PARCEL_COLUMNS = (
    Parcel.tracking_no,
    Parcel.seller_id,
    Parcel.status,
    Parcel.hub,
    Parcel.sea_big_item,
    Parcel.received_at,
    Parcel.status_before_receipt,
)
_IN_GROUP = 2000  # values per IN (...): well below SQLite's 32,766 bound parameters
# In Batch._holders: a bag that claimed the parcel and took it out again (its records name
# it). Lateness must still see that claim: a record of another bag naming the parcel, older
# than the removal, changes what that bag held and was told (IN_OTHER_BAG).
_TAKEN_OUT = "~taken_out"


def _unplaced(bag_nos: list[str]):
    """The numbers among `bag_nos` that disagreements without a bag name."""
    return (
        select(Disagreement.bag_no)
        .where(Disagreement.bag_no.in_(bag_nos), Disagreement.bag_id.is_(None))
        .distinct()
    )


def _claims_of(trks: list[str]):
    """(tracking number, bag_no, held-out code) of the parcels' memberships, oldest first."""
    return (
        select(BagParcel.tracking_no, Bag.bag_no, BagParcel.held_out)
        .join(Bag, Bag.id == BagParcel.bag_id)
        .where(BagParcel.tracking_no.in_(trks))
        .order_by(BagParcel.id)
    )


def _groups(values: Iterable) -> Iterator[list]:
    values = list(values)
    for start in range(0, len(values), _IN_GROUP):
        yield values[start : start + _IN_GROUP]


class Batch:
    """Runs of records inside one transaction, of one device or of many; the caller calls
    flush() at the end."""

    def __init__(self, session: Session):
        self.session = session
        self.folding = False  # True in a replay (gateway/ingest/replay.py)
        self.dirty: dict[str, str] = {}  # bag_no -> why it must be replayed
        self.applied: dict[str, int] = {}  # device id -> highest seq applied in this Batch
        self._unborn: dict[str, Bag] = {}  # replayed bags not yet opened again in the fold
        self.forget()

    def forget(self) -> None:
        """Drop everything loaded and pending: after a savepoint rolled a run back, the dicts
        may hold changes the database no longer has."""
        # Keyed by bag number, not id: a bag opened in this Batch gets its id at the next
        # flush, and a flush for each bag opened cost the store process 14 % at a fleet's
        # steady load (issue 20).
        self._bags: dict[str, Bag | None] = {}  # bag_no -> bag, None: not in the database
        self._rows: dict[str, Bag] = {}  # other bags loaded: those that claim a parcel
        # bag_no -> its members' tracking numbers in the order they were put in (BagParcel.id)
        self._members: dict[str, dict[str, None]] = {}
        self._held: dict[str, dict[str, str]] = {}  # bag_no -> held-out tracking no -> code
        self._hubs: dict[str, Counter] = {}  # bag_no -> hubs of its members that are imported
        self._parcels: dict[str, Row | None] = {}  # rows of _PARCEL_COLUMNS
        # tracking number -> {number of a bag it was put into: held-out code, None (a member)
        # or _TAKEN_OUT}, oldest first: the bags that claim or claimed it
        self._holders: dict[str, dict[str, str | None]] = {}
        self._linked: dict[int, set[str]] = {}
        # bag_no -> whether records applied before the bag existed name it (kept as
        # UNKNOWN_BAG disagreements without a bag): its opening then replays them
        self._named_before: dict[str, bool] = {}
        # (bag_no, tracking no) -> the bag and its BagParcel row, inserted at the next _write
        self._pending: dict[tuple[str, str], tuple[Bag, dict]] = {}
        self._touched: dict[str, Bag] = {}

    # ---- loading ------------------------------------------------------------------------

    def prefetch(self, bodies: Iterable[dict]) -> None:
        """Load, in a few queries, what these record bodies will ask for."""
        bag_nos: set[str] = set()
        trks: set[str] = set()
        for rec in bodies:
            bag_no = rec.get("bag")
            if isinstance(bag_no, str):
                bag_nos.add(bag_no)
            bags = rec.get("bags")
            if isinstance(bags, list):
                bag_nos.update(b for b in bags if isinstance(b, str))
            trk = rec.get("trk")
            if isinstance(trk, str):
                trks.add(trk)
        if bag_nos <= self._bags.keys() and trks <= self._holders.keys() & self._parcels.keys():
            return  # loaded already (the ledger prefetched the runs of every device it applies)
        session = self.session
        # The member and parcel rows below are read as plain rows on the session's connection:
        # through the ORM each row cost several times as much, and these reads are most of the
        # ingest's applying at a steady load (bags of 300 read again for each transaction).
        # They see what is flushed: flushed now, and the memberships by _write().
        session.flush()
        conn = session.connection()
        missing = bag_nos - self._bags.keys()
        for group in _groups(missing):
            for bag in session.scalars(select(Bag).where(Bag.bag_no.in_(group))):
                self._bags[bag.bag_no] = bag
        for bag_no in missing:
            self._bags.setdefault(bag_no, None)
        # A bag the runs may open: one query for all, not one for each as it opens (at a
        # fleet's steady load every handheld opens a bag now and then; issue 20).
        unknown = [b for b in missing if self._bags[b] is None]
        for bag_no in unknown:
            self._named_before[bag_no] = False
        for group in _groups(unknown):
            for bag_no in conn.execute(_unplaced(group)).scalars():
                self._named_before[bag_no] = True
        self._write()
        # In the database, so with an id: a bag opened in this Batch has its members loaded.
        unloaded = {
            b.id: b.bag_no
            for b in self._bags.values()
            if b is not None and b.bag_no not in self._members
        }
        for bag_no in unloaded.values():
            self._members[bag_no] = {}
            self._held[bag_no] = {}
        for group in _groups(unloaded):
            rows = conn.execute(
                select(BagParcel.bag_id, BagParcel.tracking_no, BagParcel.held_out)
                .where(BagParcel.bag_id.in_(group))
                .order_by(BagParcel.id)
            )
            for bag_id, trk, held in rows:
                if held is None:
                    self._members[unloaded[bag_id]][trk] = None
                else:
                    self._held[unloaded[bag_id]][trk] = held
        new_trks = trks - self._holders.keys()
        for trk in new_trks:
            self._holders[trk] = {}
        holders: set[str] = set()
        for group in _groups(new_trks):
            for trk, bag_no, held in conn.execute(_claims_of(group)):
                self._holders[trk][bag_no] = held
                holders.add(bag_no)
            for trk, bag_no in self._taken_out(group):
                self._holders[trk].setdefault(bag_no, _TAKEN_OUT)
                holders.add(bag_no)
        for group in _groups(holders - self._bags.keys() - self._rows.keys()):
            for bag in session.scalars(select(Bag).where(Bag.bag_no.in_(group))):
                self._rows[bag.bag_no] = bag
        self._load_parcels(trks)
        self._load_hubs(unloaded)

    def _load_parcels(self, trks: Iterable[str]) -> None:
        missing = [t for t in trks if t not in self._parcels]
        for group in _groups(missing):
            rows = self.session.connection().execute(
                select(*_PARCEL_COLUMNS).where(Parcel.tracking_no.in_(group))
            )
            for parcel in rows:
                self._parcels[parcel.tracking_no] = parcel
        for trk in missing:
            self._parcels.setdefault(trk, None)

    def _load_hubs(self, bags: dict[int, str]) -> None:
        """Count the hubs of the bags' (id -> bag_no) imported members (counted in SQL: bags
        are large)."""
        for bag_no in bags.values():
            self._hubs[bag_no] = Counter()
        for group in _groups(bags):
            rows = self.session.connection().execute(
                select(BagParcel.bag_id, Parcel.hub, func.count())
                .join(Parcel, Parcel.tracking_no == BagParcel.tracking_no)
                .where(BagParcel.bag_id.in_(group), BagParcel.held_out.is_(None))
                .group_by(BagParcel.bag_id, Parcel.hub)
            )
            for bag_id, hub, n in rows:
                self._hubs[bags[bag_id]][hub] = n

    # ---- questions ----------------------------------------------------------------------

    def bag(self, bag_no: str) -> Bag | None:
        """The bag with this number, or None (also a replayed bag not yet opened again)."""
        if bag_no in self._unborn:
            return None
        if bag_no not in self._bags:
            self._bags[bag_no] = self.session.scalars(
                select(Bag).where(Bag.bag_no == bag_no)
            ).one_or_none()
        return self._bags[bag_no]

    def opened(self, bag: Bag) -> None:
        """A bag just created (its id comes with the next flush): it has no members yet."""
        self._unborn.pop(bag.bag_no, None)
        self._bags[bag.bag_no] = bag
        self._members[bag.bag_no] = {}
        self._held[bag.bag_no] = {}
        self._hubs[bag.bag_no] = Counter()

    def unborn(self, bags: Iterable[Bag]) -> None:
        """Replayed bags, emptied: `bag()` says None until `reborn()` opens them again."""
        for bag in bags:
            self._unborn[bag.bag_no] = bag
            self._bags[bag.bag_no] = bag
            self._members[bag.bag_no] = {}
            self._held[bag.bag_no] = {}
            self._hubs[bag.bag_no] = Counter()

    def reborn(self, bag_no: str) -> Bag | None:
        """The row of a replayed bag the fold now opens again, or None."""
        return self._unborn.get(bag_no)

    def is_unborn(self, bag: Bag) -> bool:
        return bag.bag_no in self._unborn

    def named_before(self, bag_no: str) -> bool:
        """Whether records applied before the bag existed name it (kept as UNKNOWN_BAG)."""
        if bag_no not in self._named_before:
            found = self.session.execute(_unplaced([bag_no]).limit(1)).first()
            self._named_before[bag_no] = found is not None
        return self._named_before[bag_no]

    def kept_unplaced(self, bag_no: str) -> None:
        """A disagreement without a bag names `bag_no` (a record of a bag not known yet)."""
        self._named_before[bag_no] = True

    def mark_dirty(self, bag: Bag, why: str) -> None:
        """A record came late for this bag: replay it when the run ends."""
        self.dirty.setdefault(bag.bag_no, why)

    def members(self, bag: Bag) -> dict[str, None]:
        """The bag's tracking numbers in the order they went in (a dict used as an ordered set)."""
        if bag.bag_no not in self._members:
            self._write()
            rows = self.session.execute(
                select(BagParcel.tracking_no, BagParcel.held_out)
                .where(BagParcel.bag_id == bag.id)
                .order_by(BagParcel.id)
            ).all()
            self._members[bag.bag_no] = {trk: None for trk, held in rows if held is None}
            self._held[bag.bag_no] = {trk: held for trk, held in rows if held is not None}
            self._load_hubs({bag.id: bag.bag_no})
        return self._members[bag.bag_no]

    def held_out(self, bag: Bag) -> dict[str, str]:
        """The parcels held out of the bag, with the code each was refused with."""
        self.members(bag)
        return self._held[bag.bag_no]

    def hubs(self, bag: Bag) -> set[str]:
        """The hubs of the bag's members that are imported parcels."""
        self.members(bag)
        return {hub for hub, n in self._hubs[bag.bag_no].items() if n > 0}

    def parcel(self, trk: str) -> Row | None:
        """The imported parcel (tracking_no, seller_id, status, hub, sea_big_item,
        received_at, status_before_receipt), or None."""
        if trk not in self._parcels:
            self._parcels[trk] = self.session.execute(
                select(*_PARCEL_COLUMNS).where(Parcel.tracking_no == trk)
            ).first()
        return self._parcels[trk]

    def _taken_out(self, trks: list[str]) -> Iterator[tuple[str, str]]:
        """(tracking number, bag_no) of every bag whose records name one of the parcels."""
        yield from self.session.execute(
            select(Record.tracking_no, Bag.bag_no)
            .join(Bag, Bag.bag_no == Record.bag_no)
            .where(Record.tracking_no.in_(trks))
            .distinct()
        ).tuples()

    def _claims(self, trk: str) -> dict[str, str | None]:
        if trk not in self._holders:
            self._write()
            rows = self.session.execute(_claims_of([trk]))
            self._holders[trk] = {bag_no: held for _trk, bag_no, held in rows}
            for _trk, bag_no in self._taken_out([trk]):
                self._holders[trk].setdefault(bag_no, _TAKEN_OUT)
        return self._holders[trk]

    def _row(self, bag_no: str) -> Bag:
        """The row of a bag that claims a parcel (a replayed bag too, unborn or not)."""
        bag = self._bags.get(bag_no) or self._rows.get(bag_no)
        if bag is None:
            bag = self.session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one()
            self._rows[bag_no] = bag
        return bag

    def holder(self, trk: str) -> Bag | None:
        """The bag the parcel was last put into as a member (bag_of_parcel)."""
        nos = [bag_no for bag_no, held in self._claims(trk).items() if held is None]
        return self._row(nos[-1]) if nos else None

    def claims(self, trk: str) -> list[Bag]:
        """Every bag the parcel was put into, as a member or held out, or taken out again."""
        return [self._row(bag_no) for bag_no in self._claims(trk)]

    def linked_sellers(self, account_id: int) -> set[str]:
        if account_id not in self._linked:
            self._linked[account_id] = set(
                self.session.scalars(select(Store.seller_id).where(Store.account_id == account_id))
            )
        return self._linked[account_id]

    # ---- changes ------------------------------------------------------------------------

    def add_member(self, bag: Bag, trk: str, at: datetime, held_out: str | None = None) -> None:
        """Put the parcel in the bag, or (`held_out`: the refusal code) hold it out."""
        if held_out is None:
            self.members(bag)[trk] = None
            parcel = self.parcel(trk)
            if parcel is not None:
                self._hubs[bag.bag_no][parcel.hub] += 1
        else:
            self.held_out(bag)[trk] = held_out
        if trk in self._holders:
            self._holders[trk].pop(bag.bag_no, None)  # put in again: the latest claim comes last
            self._holders[trk][bag.bag_no] = held_out
        row = {"tracking_no": trk, "added_at": at, "held_out": held_out}
        self._pending[(bag.bag_no, trk)] = (bag, row)
        self._touched[bag.bag_no] = bag

    def remove_member(self, bag: Bag, trk: str) -> None:
        """Take the parcel out of the bag: a member or a held-out one."""
        members = self.members(bag)
        if trk in members:
            del members[trk]
            parcel = self.parcel(trk)
            if parcel is not None:
                self._hubs[bag.bag_no][parcel.hub] -= 1
        else:
            del self._held[bag.bag_no][trk]
        if trk in self._holders:
            self._holders[trk][bag.bag_no] = _TAKEN_OUT
        # Not pending: written, so its bag has an id.
        if self._pending.pop((bag.bag_no, trk), None) is None:
            self.session.execute(
                delete(BagParcel).where(BagParcel.bag_id == bag.id, BagParcel.tracking_no == trk),
                execution_options={"synchronize_session": False},
            )
        self._touched[bag.bag_no] = bag

    def flush(self) -> None:
        """Write the pending memberships; a loaded `bag.parcels` is reloaded on next use."""
        self._write()
        for bag in self._touched.values():
            loaded = {"parcels", "held_out_parcels"} - inspect(bag).unloaded
            if loaded:
                self.session.expire(bag, list(loaded))
        self._touched.clear()

    def _write(self) -> None:
        if self._pending:
            if any(bag.id is None for bag, _row in self._pending.values()):
                self.session.flush()  # the bags opened since get their ids
            rows = [{"bag_id": bag.id, **row} for bag, row in self._pending.values()]
            self._pending.clear()
            self.session.execute(BagParcel.__table__.insert(), rows)
