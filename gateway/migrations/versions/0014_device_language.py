"""devices.language: the language of a handheld's screens, English until chosen otherwise

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 01:30:00.000000

Warehouse staff and couriers on the first mile read Chinese (issue 18): the gateway chooses
each handheld's language and sends it with the config. English is the default until Chinese
screens fit the handheld's heap (docs/firmware.md, "Languages").
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "devices", sa.Column("language", sa.String(length=8), nullable=False, server_default="en")
    )


def downgrade() -> None:
    op.drop_column("devices", "language")
