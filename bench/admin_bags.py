"""Benchmark: the admin pages with a million bags (issues 6, 17: p95 server time <= 100 ms).

    .venv/bin/python bench/admin_bags.py [--bags 1000000] [--db /tmp/bagscan-bench.sqlite]

Builds (or reuses) a SQLite database at the newest migration holding --bags bags with two
parcels each, spread over a year, and a disagreement in 2,000 bags; then times the admin pages
in-process through the Flask test client (server time: routing, queries, template; no
network) as a logged-in user.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway import create_app, db
from gateway.web import auth
from gateway.web.admin import queries

PASSWORD = "bench-pass-1"
SELLERS = 200
FMT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite
CHUNK = 100_000


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).strftime(FMT)


def build(path: Path, n: int, now: datetime) -> None:
    url = f"sqlite:///{path}"
    db.upgrade(url)
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA journal_mode=OFF")
    con.execute(
        "INSERT INTO devices (id, password_hash, bag_range_lo, bag_range_hi, applied_seq,"
        " created_at, online) VALUES ('hh-bench', 'x', 1, ?, 0, ?, 1)",
        (n, _ts(now)),
    )
    rng = random.Random(6)
    span = timedelta(days=365).total_seconds()
    start = now - timedelta(days=365)
    bags, parcels = [], []
    for i in range(1, n + 1):
        closed = start + timedelta(seconds=span * i / n)
        age = now - closed
        due = closed + timedelta(hours=rng.choice((4, 8, 20, 28)))
        picked = arrived = None
        if age < timedelta(hours=6):
            status = "awaiting_pickup"
        elif age < timedelta(hours=30):
            status = rng.choice(("awaiting_pickup", "picked_up", "picked_up", "arrived"))
        else:
            status = rng.choice(("received",) * 18 + ("received_exception", "cancelled"))
        if status in ("picked_up", "arrived", "received", "received_exception"):
            picked = closed + timedelta(hours=rng.uniform(1, 30))
        if status in ("arrived", "received", "received_exception"):
            arrived = picked + timedelta(hours=rng.uniform(24, 72))
        bags.append(
            (
                i, f"BS{i:010d}", "hh-bench", status, 2, rng.randint(800, 30000),
                _ts(closed), _ts(closed), _ts(closed), f"S{rng.randrange(SELLERS):04d}",
                "paid", _ts(due), _ts(picked) if picked else None,
                _ts(arrived) if arrived else None,
            )
        )  # fmt: skip
        parcels.append((2 * i - 1, i, f"LZ{2 * i - 1:011d}CN", _ts(closed)))
        parcels.append((2 * i, i, f"LZ{2 * i:011d}CN", _ts(closed)))
        if len(bags) >= CHUNK or i == n:
            con.executemany(
                "INSERT INTO bags (id, bag_no, device_id, status, parcel_count, weight_g,"
                " opened_at, closed_at, created_at, seller_id, service, pickup_due_at,"
                " picked_up_at, arrived_at, disagreement_count)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
                bags,
            )
            con.executemany(
                "INSERT INTO bag_parcels (id, bag_id, tracking_no, added_at) VALUES (?,?,?,?)",
                parcels,
            )
            con.commit()
            bags.clear()
            parcels.clear()
            print(f"  {i:,} bags", end="\r", flush=True)
    # The exceptions queue's disagreements: one in 2,000 bags, the older half resolved.
    con.executemany(
        "INSERT INTO disagreements (bag_id, bag_no, at, code, message, resolved_at)"
        " VALUES (?, ?, ?, 'IN_OTHER_BAG', 'parcel also in another bag', ?)",
        [
            (i, f"BS{i:010d}", _ts(now), _ts(now) if i < n // 2 else None)
            for i in range(1, n + 1, 2000)
        ],
    )
    con.execute("ANALYZE")
    con.commit()
    con.close()
    print()


def measure(client, paths: list[str], rounds: int) -> tuple[float, float, float]:
    times = []
    for path in paths:  # warm-up: first touches of the file
        client.get(path)
    for _ in range(rounds):
        for path in paths:
            t0 = time.perf_counter()
            r = client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"{path}: HTTP {r.status_code}")
    times.sort()
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    return statistics.median(times), p95, times[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bags", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/bagscan-bench.sqlite"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    now = datetime.now(UTC)
    if args.rebuild or not args.db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        t0 = time.perf_counter()
        print(f"building {args.bags:,} bags in {args.db}")
        build(args.db, args.bags, now)
        print(f"built in {time.perf_counter() - t0:.0f} s")
    else:
        db.upgrade(f"sqlite:///{args.db}")

    app = create_app({"DATABASE_URL": f"sqlite:///{args.db}", "SECRET_KEY": "bench"})
    with db.transaction(app) as s:
        auth.ensure_user(s, "bench", PASSWORD, "viewer")
    client = app.test_client()
    page = client.get("/login").text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302, r.status_code

    n = args.bags
    rng = random.Random(7)
    today = queries.today(now)
    ids = [rng.randint(2, n) for _ in range(10)]
    scenarios = {
        "list, first page": ["/bags"],
        "list, deep page (keyset)": [f"/bags?before={i}" for i in ids],
        "filter status=awaiting_pickup": ["/bags?status=awaiting_pickup"],
        "filter status=cancelled": ["/bags?status=cancelled"],
        "filter seller": [f"/bags?seller=S{rng.randrange(SELLERS):04d}" for _ in range(10)],
        "filter date": [f"/bags?date={today - timedelta(days=d)}" for d in (0, 3, 40, 200)],
        "filter late": ["/bags?late=1"],
        "filter seller+status+date": [
            f"/bags?seller=S{rng.randrange(SELLERS):04d}&status=received"
            f"&date={today - timedelta(days=rng.randint(2, 300))}"
            for _ in range(10)
        ],
        "search bag number": [f"/bags?q=BS{i:010d}" for i in ids],
        "search tracking number": [f"/bags?q=LZ{2 * i:011d}CN" for i in ids],
        "search prefix": [f"/bags?q=BS{i // 1000:07d}" for i in ids],
        "dashboard": ["/"],
        "exceptions queue": ["/exceptions"],
    }
    print(
        f"\n{n:,} bags, {2 * n:,} parcels; {args.rounds} rounds; times in ms (server, in-process)"
    )
    print(f"| {'page':32} | p50 | p95 | max |\n|---|---:|---:|---:|")
    for name, paths in scenarios.items():
        p50, p95, worst = measure(client, paths, args.rounds)
        print(f"| {name:32} | {p50:.1f} | {p95:.1f} | {worst:.1f} |", flush=True)


if __name__ == "__main__":
    main()
