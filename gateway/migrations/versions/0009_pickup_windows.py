"""pickup windows: the Milkrun agreement's pickup window on the address; auto-close index

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-13 10:00:00.000000

Milkrun's driver comes at the time agreed with the seller (docs/domain.md, "Pickup and
handover"): addresses.pickup_window holds it as "HH:MM-HH:MM", and the bag's pickup deadline
follows it. The auto-close (gateway/auto_close.py) counts from a bag's latest move to
awaiting_pickup: bag_history is indexed by (to_status, bag_id, at) for that sweep.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pickup_window", sa.String(length=11), nullable=True))
    op.create_index("ix_bag_history_to_status", "bag_history", ["to_status", "bag_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_bag_history_to_status", table_name="bag_history")
    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.drop_column("pickup_window")
