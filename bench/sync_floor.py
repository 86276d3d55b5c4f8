"""The floor under the sync ratio at batched messages (docs/benchmarks.md, "Sync").

    .venv/bin/python bench/sync_floor.py [--records 200000] [--per-message 40]

The least any Python consumer that keeps the records in SQLite must do per record, timed in
one process with no broker, no validation, no acknowledgement and no times to rebuild:
`json.loads` of each message, `json.dumps` of each record's body, one `executemany` of a
25-message batch into a table shaped like `records` (unique on device and seq) and a commit
(WAL, synchronous=NORMAL, as the gateway runs SQLite). Compare with the count-only
subscriber of bench/sync_throughput.py at the same records per message: the gateway's rate
cannot exceed this one, whatever it does about validation.
"""

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

TABLE = """CREATE TABLE records (
    id INTEGER PRIMARY KEY, device_id VARCHAR(32), seq BIGINT, boot INTEGER,
    kind VARCHAR(20), ticks BIGINT, wall BIGINT, clock_ok BOOLEAN, body JSON,
    received_at DATETIME, occurred_at DATETIME, UNIQUE (device_id, seq))"""
INSERT = (
    "INSERT INTO records (device_id, seq, boot, kind, ticks, wall, clock_ok, body, "
    "received_at, occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
MESSAGES_PER_COMMIT = 25


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--per-message", type=int, default=40)
    args = parser.parse_args()
    now = int(time.time())
    messages = [
        json.dumps(
            {
                "v": 1,
                "r": [
                    {"s": s, "b": 1, "t": s * 7, "w": now, "q": 1, "k": "parcel",
                     "bag": "BS0000000001", "trk": f"LZ{s:09d}CN"}
                    for s in range(first, min(first + args.per_message, args.records + 1))
                ],
            }
        ).encode()
        for first in range(1, args.records + 1, args.per_message)
    ]  # fmt: skip
    at = "2026-11-30 00:00:00.000000"
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "floor.sqlite")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(TABLE)
        start = time.perf_counter()
        for i in range(0, len(messages), MESSAGES_PER_COMMIT):
            rows = [
                ("hh-0001", r["s"], r["b"], r["k"], r["t"], r["w"], r["q"], json.dumps(r), at, at)
                for message in messages[i : i + MESSAGES_PER_COMMIT]
                for r in json.loads(message)["r"]
            ]
            conn.executemany(INSERT, rows)
            conn.commit()
        elapsed = time.perf_counter() - start
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        conn.close()
    print(
        f"floor, {args.per_message} records/message: {stored} records in {elapsed:.2f} s = "
        f"{stored / elapsed:,.0f} records/s ({elapsed / stored * 1e6:.1f} us/record)"
    )


if __name__ == "__main__":
    main()
