"""The migrations build exactly the tables the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import gateway.web.auth  # noqa: F401 - its AdminSession table is on the same metadata
from gateway.models import Base


def test_migrations_match_the_models(migrated_db):
    engine = create_engine(f"sqlite:///{migrated_db}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_a_handheld_registered_now_gets_chinese_screens_by_the_databases_default(migrated_db):
    """Migration 0016 (issue 18): compare_metadata above does not compare server defaults."""
    engine = create_engine(f"sqlite:///{migrated_db}")
    columns = {c["name"]: c for c in inspect(engine).get_columns("devices")}
    engine.dispose()
    assert columns["language"]["default"] == "'zh'"
