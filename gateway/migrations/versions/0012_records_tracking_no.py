"""records.tracking_no: the parcel a record names, so taken-out claims are still seen

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-21 10:00:00.000000

A parcel_remove deletes the parcel's bag_parcels row, so a bag that took a parcel out no
longer showed it had claimed it: a record of another bag naming the parcel that arrived late
was applied as if the claim had never been, and a replay left that bag out (issue 15). The
records keep every claim; records.tracking_no (body "trk") finds them by parcel.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracking_no", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_records_tracking_no", ["tracking_no"])
    # Only parcel and parcel_remove records carry "trk" (protocol/wire_schema.py); it is
    # validated as text of at most 64 characters before it is stored.
    if op.get_bind().dialect.name == "postgresql":
        trk = "body->>'trk'"
    else:
        trk = "json_extract(body, '$.trk')"
    op.execute(f"UPDATE records SET tracking_no = {trk} WHERE kind IN ('parcel', 'parcel_remove')")


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_tracking_no")
        batch_op.drop_column("tracking_no")
