"""What a run of records reads from and writes to the bag tables, loaded in a few queries.

The registry (gateway/registry.py) asks for bags by number, a bag's members, a parcel, the
bag a parcel was last put into, an account's stores. Asked record by record that is several
queries each, and every query first flushes the bags changed by the record before. A Batch
answers from dicts instead: `prefetch` loads what a run of records names (its bags, their
members, the parcels, the parcels' earlier bags) in a handful of IN queries, and memberships
are written in one executemany at `flush`. Anything not prefetched is loaded on first use
(after writing the pending memberships, so the database and the dicts agree), so a Batch
gives the answers the per-record queries gave, only faster.

Bags, their history, disagreements, weighings and scans stay ORM objects: there is one
bag per ~300 records, and the session's identity map already shares them.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import Row, delete, func, inspect, select
from sqlalchemy.orm import Session

from gateway.models import Bag, BagParcel, Device, Parcel, Store

# What the registry reads of a parcel, as a plain row: ORM objects cost more to build than the
# rest of applying a record.
_PARCEL_COLUMNS = (
    Parcel.tracking_no,
    Parcel.seller_id,
    Parcel.status,
    Parcel.hub,
    Parcel.sea_big_item,
)
_IN_GROUP = 2000  # values per IN (...): well below SQLite's 32,766 bound parameters


def _groups(values: Iterable) -> Iterator[list]:
    values = list(values)
    for start in range(0, len(values), _IN_GROUP):
        yield values[start : start + _IN_GROUP]


class Batch:
    """Runs of records inside one transaction, one device's run at a time (`device`); the
    caller calls flush() at the end of each run."""

    def __init__(self, session: Session, device: Device | None):
        self.session = session
        self.device = device
        self.forget()

    def forget(self) -> None:
        """Drop everything loaded and pending: after a savepoint rolled a run back, the dicts
        may hold changes the database no longer has."""
        self._bags: dict[str, Bag | None] = {}  # bag_no -> bag, None: not in the database
        # bag id -> its members' tracking numbers in the order they were put in (BagParcel.id)
        self._members: dict[int, dict[str, None]] = {}
        self._hubs: dict[int, Counter] = {}  # bag id -> hubs of its members that are imported
        self._parcels: dict[str, Row | None] = {}  # rows of _PARCEL_COLUMNS
        # tracking number -> ids of the bags it was put into, oldest first (bag_of_parcel)
        self._holders: dict[str, list[int]] = {}
        self._linked: dict[int, set[str]] = {}
        self._pending: dict[tuple[int, str], dict] = {}  # BagParcel rows not yet inserted
        self._touched: dict[int, Bag] = {}

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
        session = self.session
        missing = bag_nos - self._bags.keys()
        for group in _groups(missing):
            for bag in session.scalars(select(Bag).where(Bag.bag_no.in_(group))):
                self._bags[bag.bag_no] = bag
        for bag_no in missing:
            self._bags.setdefault(bag_no, None)
        self._write()
        unloaded = [
            b.id for b in self._bags.values() if b is not None and b.id not in self._members
        ]
        for bag_id in unloaded:
            self._members[bag_id] = {}
        for group in _groups(unloaded):
            rows = session.execute(
                select(BagParcel.bag_id, BagParcel.tracking_no)
                .where(BagParcel.bag_id.in_(group))
                .order_by(BagParcel.id)
            )
            for bag_id, trk in rows:
                self._members[bag_id][trk] = None
        new_trks = trks - self._holders.keys()
        for trk in new_trks:
            self._holders[trk] = []
        holder_ids: set[int] = set()
        for group in _groups(new_trks):
            rows = session.execute(
                select(BagParcel.tracking_no, BagParcel.bag_id)
                .where(BagParcel.tracking_no.in_(group))
                .order_by(BagParcel.id)
            )
            for trk, bag_id in rows:
                self._holders[trk].append(bag_id)
                holder_ids.add(bag_id)
        known = {b.id for b in self._bags.values() if b is not None}
        for group in _groups(holder_ids - known):
            list(session.scalars(select(Bag).where(Bag.id.in_(group))))  # into the identity map
        self._load_parcels(trks)
        self._load_hubs(unloaded)

    def _load_parcels(self, trks: Iterable[str]) -> None:
        missing = [t for t in trks if t not in self._parcels]
        for group in _groups(missing):
            rows = self.session.execute(
                select(*_PARCEL_COLUMNS).where(Parcel.tracking_no.in_(group))
            )
            for parcel in rows:
                self._parcels[parcel.tracking_no] = parcel
        for trk in missing:
            self._parcels.setdefault(trk, None)

    def _load_hubs(self, bag_ids: list[int]) -> None:
        """Count the hubs of the bags' imported members (counted in SQL: bags are large)."""
        for bag_id in bag_ids:
            self._hubs[bag_id] = Counter()
        for group in _groups(bag_ids):
            rows = self.session.execute(
                select(BagParcel.bag_id, Parcel.hub, func.count())
                .join(Parcel, Parcel.tracking_no == BagParcel.tracking_no)
                .where(BagParcel.bag_id.in_(group))
                .group_by(BagParcel.bag_id, Parcel.hub)
            )
            for bag_id, hub, n in rows:
                self._hubs[bag_id][hub] = n

    # ---- questions ----------------------------------------------------------------------

    def bag(self, bag_no: str) -> Bag | None:
        """The bag with this number, or None."""
        if bag_no not in self._bags:
            self._bags[bag_no] = self.session.scalars(
                select(Bag).where(Bag.bag_no == bag_no)
            ).one_or_none()
        return self._bags[bag_no]

    def opened(self, bag: Bag) -> None:
        """A bag just created (and flushed): it has no members yet."""
        self._bags[bag.bag_no] = bag
        self._members[bag.id] = {}
        self._hubs[bag.id] = Counter()

    def members(self, bag: Bag) -> dict[str, None]:
        """The bag's tracking numbers in the order they went in (a dict used as an ordered set)."""
        if bag.id not in self._members:
            self._write()
            trks = self.session.scalars(
                select(BagParcel.tracking_no)
                .where(BagParcel.bag_id == bag.id)
                .order_by(BagParcel.id)
            )
            self._members[bag.id] = dict.fromkeys(trks)
            self._load_hubs([bag.id])
        return self._members[bag.id]

    def hubs(self, bag: Bag) -> set[str]:
        """The hubs of the bag's members that are imported parcels."""
        self.members(bag)
        return {hub for hub, n in self._hubs[bag.id].items() if n > 0}

    def parcel(self, trk: str) -> Row | None:
        """The imported parcel (tracking_no, seller_id, status, hub, sea_big_item), or None."""
        if trk not in self._parcels:
            self._parcels[trk] = self.session.execute(
                select(*_PARCEL_COLUMNS).where(Parcel.tracking_no == trk)
            ).first()
        return self._parcels[trk]

    def holder(self, trk: str) -> Bag | None:
        """The bag the parcel was last put into according to bagging data (bag_of_parcel)."""
        if trk not in self._holders:
            self._write()
            self._holders[trk] = list(
                self.session.scalars(
                    select(BagParcel.bag_id)
                    .where(BagParcel.tracking_no == trk)
                    .order_by(BagParcel.id)
                )
            )
        ids = self._holders[trk]
        return self.session.get(Bag, ids[-1]) if ids else None

    def linked_sellers(self, account_id: int) -> set[str]:
        if account_id not in self._linked:
            self._linked[account_id] = set(
                self.session.scalars(select(Store.seller_id).where(Store.account_id == account_id))
            )
        return self._linked[account_id]

    # ---- changes ------------------------------------------------------------------------

    def add_member(self, bag: Bag, trk: str, at: datetime) -> None:
        members = self.members(bag)
        members[trk] = None
        parcel = self.parcel(trk)
        if parcel is not None:
            self._hubs[bag.id][parcel.hub] += 1
        if trk in self._holders:
            self._holders[trk].append(bag.id)
        self._pending[(bag.id, trk)] = {"bag_id": bag.id, "tracking_no": trk, "added_at": at}
        self._touched[bag.id] = bag

    def remove_member(self, bag: Bag, trk: str) -> None:
        members = self.members(bag)
        del members[trk]
        parcel = self.parcel(trk)
        if parcel is not None:
            self._hubs[bag.id][parcel.hub] -= 1
        if trk in self._holders:
            self._holders[trk].remove(bag.id)
        if self._pending.pop((bag.id, trk), None) is None:
            self.session.execute(
                delete(BagParcel).where(BagParcel.bag_id == bag.id, BagParcel.tracking_no == trk),
                execution_options={"synchronize_session": False},
            )
        self._touched[bag.id] = bag

    def flush(self) -> None:
        """Write the pending memberships; a loaded `bag.parcels` is reloaded on next use."""
        self._write()
        for bag in self._touched.values():
            if "parcels" not in inspect(bag).unloaded:
                self.session.expire(bag, ["parcels"])
        self._touched.clear()

    def _write(self) -> None:
        if self._pending:
            rows = list(self._pending.values())
            self._pending.clear()
            self.session.execute(BagParcel.__table__.insert(), rows)
