"""The migrations build exactly the tables the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gateway.models import Base


def test_migrations_match_the_models(migrated_db):
    engine = create_engine(f"sqlite:///{migrated_db}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    # Tables of other modules' migrations (admin sessions) are not in these models: ignore them.
    diff = [d for d in diff if not (d[0] == "remove_table")]
    assert diff == []
