"""config versions: the version of the config last sent to each device

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-20 10:00:00.000000

Changes reach the handhelds as deltas numbered per device (gateway/ingest/config_feed.py,
docs/protocol.md "Config versions"); the device's status reports the version it has, so the
devices page can flag a handheld that is behind (issue 16).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(
            sa.Column("config_version", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("config_version")
