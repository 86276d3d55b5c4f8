"""The gateway ends in the same state whatever order the devices' records arrive in (issue 15).

Hypothesis draws a day: two seller handhelds bagging (parcels shared between them, refused
ones, removals), a courier's handheld scanning and refusing bags and signing handovers (of
ready bags, of bags refused at the door, still open or unknown, and forged ones), the hub's
handheld weighing arrivals, and API events (hub receipts, cancels) at times of their own. The
day is applied in time order, then in random interleavings that keep each source's own order
(an API cancel waits until its bag is known, as a seller cannot cancel a bag it does not see);
every run must end in the state of the time-ordered run: bags, members, statuses and history,
online times, arrivals, disagreements, the cancels that apply, handovers with the bags that
went with them and their receipts. A cancel refused when asked is kept and decided at its
own time (docs/bag-lifecycle.md), so it is compared like any other.

Each run gets devices and parcels of its own in one database, and the state is compared with
those names mapped back to the day's. The devices' roles and the order of events at one time
are the registry's own (ROLE_KINDS, record_tie, event_tie, receipt_tie).

BAGSCAN_HYPOTHESIS=long runs many more examples (hypothesis profile "long").
"""

import itertools
import os
import random
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from devkit.sample_world import SELLER
from gateway import db
from gateway import settings as gateway_settings
from gateway.domain import receipts
from gateway.domain.deadlines import DEFAULT_TZ
from gateway.errors import Refused
from gateway.ingest import registry
from gateway.ingest.ledger import Ledger
from gateway.models import (
    Bag,
    BagEvent,
    BagHistory,
    BagParcel,
    Device,
    Disagreement,
    Driver,
    Handover,
    Parcel,
    Record,
    Scan,
    Weighing,
)
from gateway.services import bags, couriers, devices, parcels
from protocol import wire

# The default run stays cheap (the suite runs it on SQLite and again on PostgreSQL); the long
# one (BAGSCAN_HYPOTHESIS=long) draws many more days and interleavings of each.
settings.register_profile(
    "order",
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = "long" if os.environ.get("BAGSCAN_HYPOTHESIS") == "long" else "order"
INTERLEAVINGS = {"order": 2, "long": 3}[PROFILE]
T0 = datetime(2026, 8, 8, 1, 0, tzinfo=UTC)  # 09:00 in Shenzhen
# The day's parcels: (status, seller, hub); 0-3 baggable, 4 not RTS, 5 of an unlinked store.
PARCELS = [("rts", SELLER[0], "SZ")] * 4 + [("pending", SELLER[0], "SZ"), ("rts", "2000456", "YW")]
SELLERS = ("A", "B")
# What each device of the day records; its role is the one the registry lets record that.
KINDS = {"A": registry.BAGGING, "B": registry.BAGGING, "C": registry.PICKUP, "H": ("arrive",)}
ROLES = {
    source: next(r for r, allowed in registry.ROLE_KINDS.items() if set(kinds) <= set(allowed))
    for source, kinds in KINDS.items()
}
DRIVER = "D042"
_runs = itertools.count()


@st.composite
def days(draw):
    """{source: [(minute, kind, fields)]}; sources A, B (bagging), C (courier), H (hub), api."""
    day: dict[str, list] = {"A": [], "B": [], "C": [], "H": [], "api": []}
    bagged = []
    for seller in SELLERS:
        minute = draw(st.integers(0, 20))
        for n in range(draw(st.integers(1, 2))):
            bag = (seller, n)
            events = [(minute, "bag_open", {"bag": bag})]
            put = draw(st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True))
            for i in put:
                minute += draw(st.integers(0, 3))
                events.append((minute, "parcel", {"bag": bag, "trk": i}))
            if len(put) > 1 and draw(st.booleans()):
                minute += 1
                events.append((minute, "parcel_remove", {"bag": bag, "trk": put[0]}))
            grams = draw(st.integers(1000, 9000))
            minute += draw(st.integers(1, 5))
            events.append((minute, "weigh", {"bag": bag, "g": grams}))
            if draw(st.booleans()) or n == 0:
                minute += 1
                # The device counts what it put in: the gateway re-counts.
                count = len(put) - sum(1 for e in events if e[1] == "parcel_remove")
                events.append((minute, "bag_close", {"bag": bag, "n": count, "g": grams}))
                bagged.append((bag, grams))
            day[seller] += events
            minute += draw(st.integers(0, 10))
    courier = draw(st.integers(30, 60))
    hub = draw(st.integers(60, 120))
    for bag, grams in bagged:
        what = draw(st.sampled_from(["pickup", "pickup", "refuse", "scan_refuse", "none"]))
        courier += draw(st.integers(0, 10))
        if what in ("pickup", "scan_refuse"):
            day["C"].append((courier, "pickup", {"bag": bag}))
        if what in ("refuse", "scan_refuse"):
            courier += draw(st.integers(0, 2))
            why = draw(st.sampled_from(wire.REFUSE_REASONS))
            day["C"].append((courier, "pickup_refuse", {"bag": bag, "why": why}))
        if what != "none" and draw(st.booleans()):
            hub += draw(st.integers(0, 30))
            grams += draw(st.sampled_from([0, 150, -900]))
            day["H"].append((hub, "arrive", {"bag": bag, "g": grams}))
    # Handovers signed at the door: of bags drawn among those closed, still open (n 1 of a
    # seller who did not close it) and never opened (n 2), some with a forged signature.
    candidates = [bag for bag, _grams in bagged] + [(s, n) for s in SELLERS for n in (1, 2)]
    for hid in range(draw(st.integers(0, 2))):
        listed = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique=True))
        courier += draw(st.integers(0, 5))
        forged = draw(st.integers(0, 5)) == 0
        day["C"].append((courier, "handover", {"hid": f"h{hid}", "bags": listed, "forged": forged}))
    for i in draw(st.lists(st.integers(0, 5), max_size=3, unique=True)):
        day["api"].append((draw(st.integers(20, 200)), "receipt", {"trk": i}))
    for bag, _grams in bagged:
        if draw(st.integers(0, 3)) == 0:
            day["api"].append((draw(st.integers(0, 120)), "cancel", {"bag": bag}))
    day["api"].sort(key=lambda e: e[0])
    for source in ("A", "B", "C", "H"):  # a device's clock never runs backwards
        day[source].sort(key=lambda e: e[0])
    return day


class Run:
    """One application of a day, with devices and parcels named for this run."""

    def __init__(self, app, world):
        self.app = app
        self.n = next(_runs)
        self.stored: dict[str, int] = {}  # device id -> its last record's seq
        self.waiting = False  # records stored that the ledger has not applied yet
        self.names: dict[str, str] = {}  # this run's name -> the day's
        self.ids = {s: f"oi{self.n}{s}" for s in ("A", "B", "C", "H")}
        self.trks = [f"OI{self.n:04d}P{i}" for i in range(len(PARCELS))]
        with db.transaction(app) as session:
            for source, device_id in self.ids.items():
                device, _ = devices.provision(session, device_id, 1000)
                device.role = ROLES[source]
                device.account_id = world.account_id
                device.pickup_address_id = world.pickup_address_id
                self.names[device_id] = f"dev{source}"
                if source in SELLERS:
                    for n in range(3):  # bag 2 is never opened: a handover may list it
                        self.names[wire.bag_number(device.bag_range_lo + n)] = f"bag{source}{n}"
            rows = [
                {"tracking_no": trk, "seller_id": seller, "status": status, "hub": hub}
                for trk, (status, seller, hub) in zip(self.trks, PARCELS, strict=True)
            ]
            parcels.upsert(session, parcels.validate(rows))
        self.names.update((trk, f"parcel{i}") for i, trk in enumerate(self.trks))
        self.bag_nos = {v: k for k, v in self.names.items() if v.startswith("bag")}
        with db.sessions(app)() as session:  # the key the courier's handheld signs with
            driver = session.get(Driver, DRIVER)
            secret = gateway_settings.secret(session)
            self.key = couriers.route_key(driver, secret, world.account_id)
            self.driver_name = driver.name

    def bag_no(self, bag) -> str:
        return self.bag_nos[f"bag{bag[0]}{bag[1]}"]

    def apply(self, source: str, minute: int, kind: str, fields: dict) -> None:
        """Store the event's record and apply it at once, alone (`registry.apply`)."""
        at = T0 + timedelta(minutes=minute)
        if source == "api":
            self._api(at, kind, fields)
            return
        with db.transaction(self.app) as session:
            device = session.get(Device, self.ids[source])
            record = self._record(session, device, at, kind, fields)
            registry.apply(session, device, record)
            device.applied_seq = record.seq

    def store(self, source: str, minute: int, kind: str, fields: dict) -> None:
        """Store the event's record for the ledger to apply (`catch_up`), as the ingest does;
        an API event first sees every record stored before it applied."""
        at = T0 + timedelta(minutes=minute)
        if source == "api":
            self.catch_up()
            self._api(at, kind, fields)
            return
        with db.transaction(self.app) as session:
            device = session.get(Device, self.ids[source])
            self._record(session, device, at, kind, fields)
        self.waiting = True

    def catch_up(self) -> None:
        """Apply every stored record through one `Ledger.apply`: the runs of all devices in one
        transaction and one registry Batch, as the ingest's writer applies them."""
        if self.waiting:
            with db.transaction(self.app) as session:
                Ledger().apply(session, self.ids.values())
            self.waiting = False

    def _record(self, session, device: Device, at: datetime, kind: str, fields: dict) -> Record:
        """The device's next record of the event, as its handheld would send it, stored."""
        body = dict(fields)
        if "bag" in body:
            body["bag"] = self.bag_no(body["bag"])
        if "trk" in body:
            body["trk"] = self.trks[body["trk"]]
        if kind == "bag_close":
            body["dims"] = [50, 40, 30]
        if kind in ("pickup", "pickup_refuse", "handover"):
            body["drv"] = DRIVER
        if kind == "handover":
            body = self._handover(at, body)
        if kind == "arrive":
            body["ok"] = 1
        seq = self.stored[device.id] = self.stored.get(device.id, 0) + 1
        wall = int(at.timestamp())
        body |= {"s": seq, "b": 1, "t": seq, "w": wall, "q": 1, "k": kind}
        record = Record(
            device_id=device.id,
            seq=seq,
            boot=1,
            kind=kind,
            ticks=seq,
            wall=wall,
            clock_ok=True,
            body=body,
            received_at=at,
            occurred_at=at,
        )
        session.add(record)
        session.flush()
        return record

    def _api(self, at: datetime, kind: str, fields: dict) -> None:
        with db.transaction(self.app) as session:
            if kind == "receipt":
                parcels.receive(session, [self.trks[fields["trk"]]], at)
                return
            bag = registry.find_bag(session, self.bag_no(fields["bag"]))
            if bag is None:
                return  # 404: not known (yet)
            try:
                bags.cancel(session, bag, at, "api", "seller asked")
            except Refused:
                pass  # 409, and kept: the API commits it (docs/bag-lifecycle.md)

    def _handover(self, at: datetime, fields: dict) -> dict:
        """The handover record as the courier's handheld signs it (or a forged one)."""
        listed = [self.bag_no(b) for b in fields["bags"]]
        day = at.astimezone(ZoneInfo(DEFAULT_TZ)).date()  # the handheld dates it so
        signed = receipts.HandoverFields(
            day, SELLER[0], SELLER[1], tuple(listed), DRIVER, self.driver_name
        )
        sig = "ab" * 32 if fields["forged"] else receipts.sign_handover(signed, self.key)
        return {
            "hid": fields["hid"],
            "drv": DRIVER,
            "seller": SELLER[0],
            "date": day.isoformat(),
            "bags": listed,
            "sig": sig,
        }

    def cancel_ready(self, fields: dict) -> bool:
        """A seller cancels only a bag the gateway shows."""
        with db.sessions(self.app)() as session:
            return registry.find_bag(session, self.bag_no(fields["bag"])) is not None

    def state(self) -> dict:
        """Everything the issue names, with this run's names mapped to the day's."""
        pattern = re.compile("|".join(re.escape(k) for k in sorted(self.names, key=len)[::-1]))

        def name(value):
            if isinstance(value, str):
                return pattern.sub(lambda m: self.names[m.group(0)], value)
            return value

        def rows(items):
            return sorted((tuple(name(v) for v in row) for row in items), key=repr)

        with db.sessions(self.app)() as session:
            mine = list(
                session.scalars(select(Bag).where(Bag.bag_no.in_(list(self.bag_nos.values()))))
            )
            ids = [b.id for b in mine]
            by_id = {b.id: name(b.bag_no) for b in mine}
            handovers = list(
                session.scalars(select(Handover).where(Handover.device_id == self.ids["C"]))
            )
            hids = {h.id: h.device_handover_id for h in handovers}
            out: dict = {}
            for b in mine:
                out[by_id[b.id]] = (
                    b.status,
                    name(b.device_id),
                    b.parcel_count,
                    b.held_out_count,
                    b.weight_g,
                    b.closed_at,
                    b.picked_up_at,
                    b.driver_id,
                    b.pickup_refused_reason,
                    b.arrival_weight_g,
                    b.arrival_difference_g,
                    b.arrived_at,
                    name(b.seller_id),
                    b.disagreement_count,
                    b.opened_at,
                    hids.get(b.handover_id),
                )
            members = session.execute(
                select(
                    BagParcel.bag_id, BagParcel.tracking_no, BagParcel.held_out, BagParcel.added_at
                )
                .where(BagParcel.bag_id.in_(ids))
                .order_by(BagParcel.id)
            ).all()
            # Per bag in the order they went in (sorted is stable).
            out["members"] = sorted(
                ((by_id[b], name(t), h, at) for b, t, h, at in members), key=lambda r: r[0]
            )
            history = session.execute(
                select(
                    BagHistory.bag_id,
                    BagHistory.at,
                    BagHistory.from_status,
                    BagHistory.to_status,
                    BagHistory.cause,
                    BagHistory.actor,
                )
                .where(BagHistory.bag_id.in_(ids))
                .order_by(BagHistory.id)
            ).all()
            out["history"] = sorted(
                ((by_id[r[0]], *(name(v) for v in r[1:])) for r in history), key=lambda r: r[0]
            )
            out["disagreements"] = rows(
                session.execute(
                    select(
                        Disagreement.bag_no,
                        Disagreement.code,
                        Disagreement.tracking_no,
                        Disagreement.message,
                        Disagreement.at,
                        Disagreement.device_id,
                    ).where(Disagreement.device_id.in_(list(self.ids.values())))
                )
            )
            out["scans"] = rows(
                (by_id[s.bag_id], s.kind, s.driver_id, s.reason, s.at)
                for s in session.scalars(select(Scan).where(Scan.bag_id.in_(ids)))
            )
            out["weighings"] = rows(
                (by_id[w.bag_id], w.kind, w.grams, w.difference_g, w.allowance_g, w.at)
                for w in session.scalars(select(Weighing).where(Weighing.bag_id.in_(ids)))
            )
            out["events"] = rows(
                (by_id[e.bag_id], e.event, e.at, e.cause)
                for e in session.scalars(
                    select(BagEvent).where(BagEvent.bag_id.in_(ids), BagEvent.applied)
                )
            )
            out["handovers"] = sorted(
                (
                    h.device_handover_id,
                    h.signature_ok,
                    h.at,
                    tuple(name(b) for b in h.bag_numbers),
                    None
                    if h.receipt is None
                    else (
                        h.receipt.issued_at,
                        tuple(name(b) for b in h.receipt.bag_numbers),
                        tuple(tuple(name(v) for v in r.values()) for r in h.receipt.refused_bags),
                    ),
                )
                for h in handovers
            )
            out["parcels"] = [
                (name(p.tracking_no), p.status, p.received_at, p.online_at, p.online_reason)
                for p in session.scalars(
                    select(Parcel)
                    .where(Parcel.tracking_no.in_(self.trks))
                    .order_by(Parcel.tracking_no)
                )
            ]
        return out


def interleave(day: dict, rng: random.Random, run: Run):
    """The day's events in a random order that keeps each source's own order."""
    queues = {s: list(events) for s, events in day.items() if events}
    while queues:
        ready = [
            s
            for s, q in queues.items()
            if not (s == "api" and q[0][1] == "cancel" and not run.cancel_ready(q[0][2]))
        ]
        source = rng.choice(ready or sorted(queues))
        yield (source, *queues[source].pop(0))
        if not queues[source]:
            del queues[source]


def in_time_order(day: dict, run: Run):
    """The day's events by the registry's key: time, then its tie at one time."""

    def key(source: str, i: int, minute: int, kind: str, fields: dict) -> registry.Key:
        at = T0 + timedelta(minutes=minute)
        if source != "api":  # the i-th record of a device of the run has seq i + 1
            return (at, registry.record_tie(run.ids[source], i + 1))
        if kind == "cancel":  # its events are numbered in the order they are asked
            return (at, registry.event_tie(i))
        return (at, registry.receipt_tie(run.trks[fields["trk"]]))

    events = [(s, i, *event) for s, q in day.items() for i, event in enumerate(q)]
    for source, _i, minute, kind, fields in sorted(events, key=lambda e: key(*e)):
        yield source, minute, kind, fields


def time_ordered_state(app, world, day: dict) -> dict:
    """The state the day ends in with its events applied one by one in time order."""
    reference = Run(app, world)
    for event in in_time_order(day, reference):
        reference.apply(*event)
    return reference.state()


@settings(settings.get_profile(PROFILE))
@given(day=days(), seed=st.integers(0, 2**32 - 1))
def test_any_arrival_order_ends_in_the_state_of_the_time_ordered_run(app, world, day, seed):
    expected = time_ordered_state(app, world, day)
    rng = random.Random(seed)
    for _ in range(INTERLEAVINGS):
        run = Run(app, world)
        for event in interleave(day, rng, run):
            run.apply(*event)
        assert run.state() == expected


@settings(settings.get_profile(PROFILE))
@given(day=days(), seed=st.integers(0, 2**32 - 1))
def test_the_ledger_applying_stored_chunks_of_any_order_ends_in_the_same_state(
    app, world, day, seed
):
    """As the ingest applies: an interleaving is stored, and every few records the ledger
    applies all that is waiting, of every device, in one transaction and one registry Batch
    (late bags replayed once, after all the devices' runs; issue 20)."""
    expected = time_ordered_state(app, world, day)
    rng = random.Random(seed)
    for _ in range(INTERLEAVINGS):
        run = Run(app, world)
        for event in interleave(day, rng, run):
            run.store(*event)
            if rng.random() < 0.2:
                run.catch_up()
        run.catch_up()
        assert run.state() == expected
