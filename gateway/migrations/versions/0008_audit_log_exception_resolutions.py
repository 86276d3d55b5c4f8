"""audit log and exception resolutions: who did what on the admin page, and what they resolved

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-12 10:00:00.000000

Dispatchers and admins act on the admin page (issue 17): every action is written to audit_log
with the state before and after; an exception of the queue resolved by a person gets a row in
exception_resolutions (who, when, why). disagreements.resolved_at is indexed: the queue counts
the open ones on every dashboard view.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "exception_resolutions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("ref", sa.String(length=120), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_by", sa.String(length=64), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.UniqueConstraint("kind", "ref"),
    )
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.create_index("ix_disagreements_resolved_at", ["resolved_at"])


def downgrade() -> None:
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.drop_index("ix_disagreements_resolved_at")
    op.drop_table("exception_resolutions")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
