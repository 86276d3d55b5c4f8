"""Registry apply throughput: stored bagging records -> bags, in-process (docs/benchmarks.md).

    .venv/bin/python bench/registry_apply.py [--db sqlite|postgresql] [--devices 8]
        [--records 3000] [--dirty 0.05]

Each device bags imported parcels: bag_open, up to 298 parcels, weigh, bag_close, next bag.
With --dirty, that fraction of parcel scans is replaced by something the gateway disagrees
with or has to undo (a parcel scanned twice, removed again, pending, of an unlinked store,
never imported, already in another bag). The records are stored by the ledger first
(not timed), then applied the way the ingest worker does it when it lags: transactions of
about 50 ms of `Ledger.apply` until every device is applied. Prints records/s and a
fingerprint of the resulting bags, memberships, history and disagreements, so two versions
of the registry can be shown to produce the same state from the same records.

PostgreSQL: a scratch schema on --pg (dropped afterwards), as tests/gateway/conftest.py does.
"""

import argparse
import hashlib
import os
import random
import tempfile
import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, insert, select, text

from gateway import create_app, db
from gateway.ingest.ledger import Ledger
from gateway.models import (
    Account,
    Address,
    Bag,
    BagHistory,
    BagParcel,
    Device,
    Disagreement,
    Parcel,
    Store,
    Weighing,
)
from gateway.services import devices
from protocol import wire

SELLER, OTHER = "1000123", "2000456"
PER_BAG = 298  # parcels per bag; bag_open + parcels + weigh + bag_close = 301 records


def device_records(n: int, device_no: int, lo: int, dirty: float, rng: random.Random) -> list:
    """n records of one device: bag after bag of its own imported parcels."""
    recs: list[dict] = []
    wall = 1_796_000_000
    bag_serial = lo
    trk_no = 0
    in_prev_bag: str | None = None

    def add(kind: str, **fields) -> None:
        seq = len(recs) + 1
        recs.append({"s": seq, "b": 1, "t": seq * 10, "w": wall + seq, "q": 1, "k": kind, **fields})

    while len(recs) < n:
        bag = wire.bag_number(bag_serial)
        add("bag_open", bag=bag)
        members: list[str] = []
        for _ in range(PER_BAG):
            if len(recs) >= n - 2:
                break
            trk_no += 1
            trk = f"LZ{device_no:03d}{trk_no:06d}CN"
            roll = rng.random()
            if roll < dirty and members:
                case = rng.randrange(6)
                if case == 0:  # scanned twice: DUPLICATE
                    add("parcel", bag=bag, trk=members[-1])
                elif case == 1:  # taken out again
                    add("parcel_remove", bag=bag, trk=members.pop())
                elif case == 2:  # not ready to ship: NOT_RTS
                    add("parcel", bag=bag, trk=f"PD{device_no:03d}{trk_no:06d}")
                    members.append(f"PD{device_no:03d}{trk_no:06d}")
                elif case == 3:  # a store not linked to the account
                    add("parcel", bag=bag, trk=f"OT{device_no:03d}{trk_no:06d}")
                    members.append(f"OT{device_no:03d}{trk_no:06d}")
                elif case == 4:  # never imported
                    add("parcel", bag=bag, trk=f"UN{device_no:03d}{trk_no:06d}")
                    members.append(f"UN{device_no:03d}{trk_no:06d}")
                elif in_prev_bag:  # already in the previous (closed) bag: accepted
                    add("parcel", bag=bag, trk=in_prev_bag)
                    members.append(in_prev_bag)
                    in_prev_bag = None
                else:  # removal of a parcel the bag never held: NOT_IN_BAG
                    add("parcel_remove", bag=bag, trk="LZNOTHERE01")
                continue
            add("parcel", bag=bag, trk=trk)
            members.append(trk)
        add("weigh", bag=bag, g=4200)
        add("bag_close", bag=bag, n=len(members), g=4200, dims=[60, 40, 30])
        in_prev_bag = members[0] if members else None
        bag_serial += 1
    return recs[:n]


def parcels_of(recs: list[dict]) -> list[dict]:
    rows = {}
    for rec in recs:
        trk = rec.get("trk")
        if not trk or trk in rows or trk.startswith(("UN", "LZNOTHERE")):
            continue
        seller, status = SELLER, "rts"
        if trk.startswith("PD"):
            status = "pending"
        elif trk.startswith("OT"):
            seller = OTHER
        rows[trk] = {"tracking_no": trk, "seller_id": seller, "status": status, "hub": "SZ"}
    return list(rows.values())


def setup(app, args) -> dict[str, list[dict]]:
    rng = random.Random(args.seed)
    loads = {}
    with db.transaction(app) as session:
        account = Account(name="Shenzhen Trading")
        session.add(account)
        session.flush()
        session.add_all(
            [
                Store(seller_id=SELLER, seller_name="深圳小商店", account_id=account.id),
                Store(seller_id=OTHER, seller_name="义乌小店"),
            ]
        )
        address = Address(
            account_id=account.id, kind="pickup", service="milkrun", warehouse_name="龙华仓"
        )
        session.add(address)
        session.flush()
        for i in range(args.devices):
            device, _ = devices.provision(session, f"hh-{i:03d}", 10_000)
            device.account_id = account.id
            device.pickup_address_id = address.id
            session.flush()
            loads[device.id] = device_records(args.records, i, device.bag_range_lo, args.dirty, rng)
            rows = parcels_of(loads[device.id])
            if rows:
                session.execute(insert(Parcel), rows)
    ledger = Ledger()
    now = datetime.now(UTC)
    for device_id, recs in loads.items():
        for start in range(0, len(recs), 1000):
            with db.transaction(app) as session:
                ledger.store(session, {device_id: recs[start : start + 1000]}, {}, now)
    return loads


def apply_all(app, ids: list[str], slice_s: float) -> tuple[int, float, int]:
    ledger = Ledger()
    done = transactions = 0
    start = time.perf_counter()
    while True:
        with db.transaction(app) as session:
            n = ledger.apply(session, ids, until=time.monotonic() + slice_s)
        transactions += 1
        done += n
        if n == 0:
            break
    return done, time.perf_counter() - start, transactions


def _ts(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


def fingerprint(app) -> tuple[str, dict]:
    """A hash of the state the registry built (no ids or wall-clock columns), and counts."""
    h = hashlib.sha256()
    with db.sessions(app)() as session:
        bags = session.scalars(select(Bag).order_by(Bag.bag_no)).all()
        for bag in bags:
            h.update(
                repr(
                    (
                        bag.bag_no,
                        bag.device_id,
                        bag.status,
                        bag.parcel_count,
                        bag.weight_g,
                        bag.dims_cm,
                        _ts(bag.opened_at),
                        _ts(bag.closed_at),
                        bag.seller_id,
                        bag.service,
                        _ts(bag.pickup_due_at),
                        bag.disagreement_count,
                        [p.tracking_no for p in bag.parcels],
                        [(_ts(x.at), x.from_status, x.to_status, x.cause) for x in bag.history],
                    )
                ).encode()
            )
        dis = session.execute(
            select(
                Disagreement.code, Disagreement.tracking_no, Disagreement.message, Bag.bag_no
            ).outerjoin(Bag, Bag.id == Disagreement.bag_id)
        ).all()
        # By content, not by id: a replay writes its bags' disagreements again, so their
        # ids follow where the time budget cut the transactions.
        h.update(repr(sorted((tuple(d) for d in dis), key=repr)).encode())
        counts = {
            "bags": len(bags),
            "bag_parcels": session.query(BagParcel).count(),
            "history": session.query(BagHistory).count(),
            "weighings": session.query(Weighing).count(),
            "disagreements": len(dis),
            "quarantined": sum(
                int((d.status or {}).get("quarantined_count") or 0)
                for d in session.scalars(select(Device))
            ),
        }
    return h.hexdigest()[:16], counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--records", type=int, default=3000, help="records per device")
    parser.add_argument("--dirty", type=float, default=0.0, help="fraction of odd scans")
    parser.add_argument("--slice", type=float, default=0.05, help="seconds per transaction")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    schema = None
    if args.db == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-registry-')}/gw.sqlite"
    else:
        schema = "bench_" + os.urandom(4).hex()
        admin = create_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
    try:
        db.upgrade(url)
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-secret"})
        loads = setup(app, args)
        total = sum(len(r) for r in loads.values())
        done, elapsed, transactions = apply_all(app, sorted(loads), args.slice)
        digest, counts = fingerprint(app)
        app.extensions["bagscan.engine"].dispose()
    finally:
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    print(
        f"{args.db}: {args.devices} devices x {args.records} records, dirty {args.dirty:.0%}: "
        f"applied {done} of {total} in {elapsed:.2f} s ({transactions} transactions) = "
        f"{done / elapsed:,.0f} records/s"
    )
    print(f"state {digest} {counts}")


if __name__ == "__main__":
    main()
