"""devices.language: Chinese screens by default for new handhelds

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 04:30:00.000000

Warehouse staff and couriers on the first mile read Chinese (issue 18). Chinese screens fit
the handheld's heap now (the memory test's workload runs in Chinese at 104K and 108K:
docs/benchmarks.md), so a handheld registered from now on gets them; English stays one PATCH
away. Handhelds registered before keep the language they have.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.alter_column(
            "language", existing_type=sa.String(length=8), nullable=False, server_default="zh"
        )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.alter_column(
            "language", existing_type=sa.String(length=8), nullable=False, server_default="en"
        )
