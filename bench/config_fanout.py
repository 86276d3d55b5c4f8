"""A change pushed to a whole fleet (issue 20): the config feed's round that sends one parcel's
cancellation to every seller handheld of an account, in this process, against the database.

    .venv/bin/python bench/config_fanout.py [--devices 10000] [--db postgresql|sqlite]

N seller devices of one account (its store linked, one parcel), provisioned in one insert; a
first feed round takes its marks; then the parcel is cancelled and one round is timed, from
the cancellation's commit to the last delta handed to the publisher (a stub that keeps them:
the MQTT side is bench/fleet_load.py's). Prints the round's seconds and the deltas sent.
"""

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, update

from gateway import clock, create_app, db
from gateway.ingest.config_feed import ConfigFeed
from gateway.models import Account, Device, Parcel, Store

TRK = "LZ000000001CN"


def setup(db_url: str, devices: int):
    db.upgrade(db_url)
    app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": "bench"})
    now = datetime.now(UTC)
    with db.transaction(app) as session:
        account = Account(name="Fleet")
        session.add(account)
        session.flush()
        session.add(Store(seller_id="S1", seller_name="Fleet", account_id=account.id))
        session.add(Parcel(tracking_no=TRK, seller_id="S1", status="rts", hub="SZ"))
        session.execute(
            insert(Device),
            [
                {
                    "id": f"hh-f{i:05d}",
                    "password_hash": "-",
                    "role": "seller",
                    "account_id": account.id,
                    "bag_range_lo": 1 + i * 100,
                    "bag_range_hi": (i + 1) * 100,
                    "applied_seq": 0,
                    "online": False,
                    "created_at": now,
                }
                for i in range(devices)
            ],
        )
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    os.environ["BAGSCAN_TEST_DB"] = args.db
    from devkit.database import scratch_database  # reads BAGSCAN_TEST_DB

    with tempfile.TemporaryDirectory() as tmp, scratch_database(Path(tmp)) as db_url:
        app = setup(db_url, args.devices)
        sent: list[tuple[str, bytes, bool]] = []
        feed = ConfigFeed(app, lambda *message: sent.append(message))
        with db.sessions(app)() as session:
            feed.tick(session)  # the first round takes its marks
        with db.transaction(app) as session:
            session.execute(
                update(Parcel)
                .where(Parcel.tracking_no == TRK)
                .values(status="cancelled", updated_at=clock.now())
            )
        started = time.perf_counter()
        with db.sessions(app)() as session:
            deltas = feed.tick(session)
        took = time.perf_counter() - started
        assert deltas == len(sent) == args.devices and all(TRK.encode() in m[1] for m in sent)
        print(
            f"{args.db}: a parcel cancelled for {args.devices:,} handhelds: one feed round "
            f"{took:.2f} s, {deltas:,} deltas ({took / deltas * 1e6:.0f} µs a handheld)"
        )
        # Every handheld online and caught up, its status as a handheld reports it: what a
        # round with nothing to send costs (the feed runs one every TICK_S).
        with db.transaction(app) as session:
            session.execute(
                update(Device).values(
                    online=True,
                    status={"s": 1, "n": 1, "q": 1, "clock_skew_s": 0, "status_at": "t"},
                )
            )
        with db.sessions(app)() as session:
            feed.tick(session)  # the statuses seen once
        sent.clear()
        started = time.perf_counter()
        with db.sessions(app)() as session:
            feed.tick(session)
        idle = time.perf_counter() - started
        assert not sent
        print(
            f"{args.db}: a round with all {args.devices:,} online and nothing to send {idle:.2f} s"
        )
        app.extensions["bagscan.engine"].dispose()


if __name__ == "__main__":
    main()
