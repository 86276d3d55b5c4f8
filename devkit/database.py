"""A scratch database per test or bench run: a SQLite file, or a PostgreSQL database.

The suite runs on SQLite, and again on PostgreSQL with BAGSCAN_TEST_DB=postgresql (tools/test
does both); BAGSCAN_TEST_PG names the PostgreSQL server."""

import os
from contextlib import contextmanager
from pathlib import Path

TEST_DB = os.environ.get("BAGSCAN_TEST_DB", "sqlite")
PG_SERVER = os.environ.get("BAGSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def scratch_database(tmp: Path):
    """A new empty database: a SQLite file in tmp, or a PostgreSQL database dropped after."""
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp / ('bagscan-' + os.urandom(3).hex() + '.sqlite')}"
        return
    from sqlalchemy import create_engine, text

    name = "bagscan_test_" + os.urandom(6).hex()
    server = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@contextmanager
def analyzed(url: str, every: float = 15.0):
    """While the block runs, ANALYZE the PostgreSQL database at url every `every` seconds if
    the server's autovacuum is off, as autovacuum's analyze would (its default naptime is a
    minute; a bench's tables grow from empty in seconds). A deployment runs with autovacuum
    on (docs/deploy.md); without statistics the planner takes a table that grew from empty
    for a small one and scans it whole where an index answers (docs/benchmarks.md, "A fleet
    of handhelds"). SQLite: nothing."""
    if not url.startswith("postgresql"):
        yield
        return
    import threading

    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        on = conn.execute(text("SHOW autovacuum")).scalar() == "on"
    if on:
        engine.dispose()
        yield
        return
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            with engine.connect() as conn:
                conn.execute(text("ANALYZE"))

    print(f"PostgreSQL's autovacuum is off: this bench runs ANALYZE every {every:.0f} s")
    thread = threading.Thread(target=run, name="analyze", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        engine.dispose()
