"""Database engine and sessions; the schema is owned by the Alembic migrations."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask, current_app, g
from sqlalchemy import Engine, Select, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def storable(text: str) -> bool:
    """Text both databases can hold: PostgreSQL's text takes no NUL, and an unpaired surrogate
    (a JSON "\\ud800" escape) has no UTF-8 encoding. Requests are refused before they try."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def newest_first(session: Session, query: Select, model, before: int | None, per_page: int):
    """A page of query's rows by keyset on model.id, newest first, as the admin pages list:
    (rows, the id the next page starts before, or None on the last page)."""
    if before:
        query = query.where(model.id < before)
    return page_of(
        list(session.scalars(query.order_by(model.id.desc()).limit(per_page + 1))), per_page
    )


def page_of(rows: list, per_page: int) -> tuple[list, int | None]:
    """rows read one past a page (newest first): the page, and the id the next one starts
    before, or None when nothing is left."""
    if len(rows) > per_page:
        return rows[:per_page], rows[per_page - 1].id
    return rows, None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):
            # WAL lets the admin page read while the ingest worker writes.
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def upgrade(url: str) -> None:
    """Bring the database at url to the newest migration."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["bagscan.engine"] = engine
    app.extensions["bagscan.sessions"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def sessions(app: Flask | None = None) -> sessionmaker:
    return (app or current_app).extensions["bagscan.sessions"]


def session() -> Session:
    """The request's session, closed at teardown."""
    if "db_session" not in g:
        g.db_session = sessions()()
    return g.db_session


@contextmanager
def transaction(app: Flask) -> Iterator[Session]:
    """A session outside a request that commits on success and rolls back on error."""
    with sessions(app)() as s, s.begin():
        yield s


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()
