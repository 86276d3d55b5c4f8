"""devices, records, bags

Revision ID: 0001
Revises:
Create Date: 2026-11-29 17:19:16.668127
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("bag_range_lo", sa.BigInteger(), nullable=False),
        sa.Column("bag_range_hi", sa.BigInteger(), nullable=False),
        sa.Column("applied_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "bags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bag_no", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("parcel_count", sa.Integer(), nullable=False),
        sa.Column("weight_g", sa.Integer(), nullable=True),
        sa.Column("dims_cm", sa.JSON(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bag_no"),
    )
    with op.batch_alter_table("bags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bags_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_bags_status"), ["status"], unique=False)

    op.create_table(
        "records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("boot", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ticks", sa.BigInteger(), nullable=False),
        sa.Column("wall", sa.BigInteger(), nullable=False),
        sa.Column("clock_ok", sa.Boolean(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "seq"),
    )
    op.create_table(
        "bag_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bag_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["bag_id"],
            ["bags.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bag_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bag_history_bag_id"), ["bag_id"], unique=False)

    op.create_table(
        "bag_parcels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bag_id", sa.Integer(), nullable=False),
        sa.Column("tracking_no", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bag_id"],
            ["bags.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bag_id", "tracking_no"),
    )
    with op.batch_alter_table("bag_parcels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bag_parcels_bag_id"), ["bag_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bag_parcels_tracking_no"), ["tracking_no"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("bag_parcels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bag_parcels_tracking_no"))
        batch_op.drop_index(batch_op.f("ix_bag_parcels_bag_id"))

    op.drop_table("bag_parcels")
    with op.batch_alter_table("bag_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bag_history_bag_id"))

    op.drop_table("bag_history")
    op.drop_table("records")
    with op.batch_alter_table("bags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bags_status"))
        batch_op.drop_index(batch_op.f("ix_bags_created_at"))

    op.drop_table("bags")
    op.drop_table("devices")
