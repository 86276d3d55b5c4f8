"""driver accounts: the seller accounts on each driver's route

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-12 10:00:00.000000

A device config carries only the drivers of its account's route, each with a key for that
account only, and a driver signs only the handovers of accounts on its route (issue 21). A
driver created before this migration is on no route until one is given.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "driver_accounts",
        sa.Column("driver_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["driver_id"], ["drivers.id"]),
        sa.PrimaryKeyConstraint("driver_id", "account_id"),
    )
    op.create_index("ix_driver_accounts_account_id", "driver_accounts", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_driver_accounts_account_id", table_name="driver_accounts")
    op.drop_table("driver_accounts")
