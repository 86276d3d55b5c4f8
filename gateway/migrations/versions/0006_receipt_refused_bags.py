"""receipt refused bags: the bags of a signed handover the gateway did not hand over

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 21:30:00.000000

A handover may list bags that are unknown, of another seller or not ready for pickup; the
receipt is issued for the others and names these with their reason (issue 21).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refused_bags", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_column("refused_bags")
