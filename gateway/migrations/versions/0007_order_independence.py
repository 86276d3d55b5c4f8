"""order independence: held-out parcels, replay keys, gateway bag events, revisions

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-10 10:00:00.000000

Devices sync in any order (issue 15). A bag's state is derived from the stored records and
the gateway's own bag events (bag_events), replayed in time order when a late record arrives
(gateway/ingest/replay.py); records.bag_no finds a bag's records, bags.last_at/last_tie is the
latest event applied to a bag. A parcel the gateway refuses is held out of the bag
(bag_parcels.held_out), and every recomputation is noted in revisions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bag_no", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_records_bag_no", ["bag_no"])
    with op.batch_alter_table("bags", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("held_out_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("last_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_tie", sa.String(length=120), nullable=True))
    with op.batch_alter_table("bag_parcels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_out", sa.String(length=32), nullable=True))
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bag_no", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_disagreements_bag_no", ["bag_no"])
        batch_op.create_index("ix_disagreements_tracking_no", ["tracking_no"])
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_before_receipt", sa.String(length=16), nullable=True))
    op.create_table(
        "bag_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("bag_id", sa.Integer(), sa.ForeignKey("bags.id"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("bag_id", sa.Integer(), sa.ForeignKey("bags.id"), nullable=True, index=True),
        sa.Column("tracking_no", sa.String(length=64), nullable=True, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("revisions")
    op.drop_table("bag_events")
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.drop_column("status_before_receipt")
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.drop_index("ix_disagreements_tracking_no")
        batch_op.drop_index("ix_disagreements_bag_no")
        batch_op.drop_column("bag_no")
    with op.batch_alter_table("bag_parcels", schema=None) as batch_op:
        batch_op.drop_column("held_out")
    with op.batch_alter_table("bags", schema=None) as batch_op:
        batch_op.drop_column("last_tie")
        batch_op.drop_column("last_at")
        batch_op.drop_column("held_out_count")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_bag_no")
        batch_op.drop_column("bag_no")
