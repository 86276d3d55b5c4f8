"""ingest_members: the live gateway instances of a partitioned ingest and their buckets

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 01:00:00.000000

Several instances split the devices among themselves (issue 20): each instance beats here
and lists the buckets of devices it subscribes to (gateway/ingest/partition.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_members",
        sa.Column("instance", sa.String(length=128), nullable=False),
        sa.Column("beat", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("instance"),
    )


def downgrade() -> None:
    op.drop_table("ingest_members")
