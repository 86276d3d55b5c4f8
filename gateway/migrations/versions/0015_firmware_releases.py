"""firmware_releases, device_updates: firmware updates over the air

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 04:00:00.000000

Issue 19 item 1: an admin uploads a signed release and rolls it out to handhelds, which fetch
it over MQTT; each handheld's update state is kept for the rollout page (docs/ota.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "firmware_releases",
        sa.Column("version", sa.String(length=32), primary_key=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=512), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("packed", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=True),
    )
    op.create_table(
        "device_updates",
        sa.Column("device_id", sa.String(length=32), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column(
            "version",
            sa.String(length=32),
            sa.ForeignKey("firmware_releases.version"),
            nullable=False,
            index=True,
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("device_updates")
    op.drop_table("firmware_releases")
