"""accounts, stores, addresses, parcels, drivers, pickups, handovers, receipts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 17:32:01.668615
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "drivers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("badge", sa.String(length=32), nullable=False),
        sa.Column("key_sealed", sa.String(length=64), nullable=False),
        sa.Column("pin_salt", sa.String(length=16), nullable=False),
        sa.Column("pin_check", sa.String(length=16), nullable=False),
        sa.Column("pin_key", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "parcels",
        sa.Column("tracking_no", sa.String(length=64), nullable=False),
        sa.Column("seller_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hub", sa.String(length=8), nullable=False),
        sa.Column("sea_big_item", sa.Boolean(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("online_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("online_reason", sa.String(length=24), nullable=True),
        sa.PrimaryKeyConstraint("tracking_no"),
    )
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parcels_imported_at"), ["imported_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_parcels_seller_id"), ["seller_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_parcels_status"), ["status"], unique=False)

    op.create_table(
        "addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("service", sa.String(length=16), nullable=True),
        sa.Column("warehouse_name", sa.String(length=100), nullable=False),
        sa.Column("contact", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("province", sa.String(length=32), nullable=False),
        sa.Column("city", sa.String(length=32), nullable=False),
        sa.Column("district", sa.String(length=32), nullable=False),
        sa.Column("street", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "kind", "warehouse_name"),
    )
    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_addresses_account_id"), ["account_id"], unique=False)

    op.create_table(
        "stores",
        sa.Column("seller_id", sa.String(length=32), nullable=False),
        sa.Column("seller_name", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("return_address_id", sa.Integer(), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["return_address_id"],
            ["addresses.id"],
        ),
        sa.PrimaryKeyConstraint("seller_id"),
    )
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stores_account_id"), ["account_id"], unique=False)

    op.create_table(
        "handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("device_handover_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("driver_id", sa.String(length=64), nullable=False),
        sa.Column("seller_id", sa.String(length=64), nullable=False),
        sa.Column("pickup_date", sa.Date(), nullable=False),
        sa.Column("bag_numbers", sa.JSON(), nullable=False),
        sa.Column("bag_count", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("signature_ok", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "device_handover_id"),
    )
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handovers_seller_id"), ["seller_id"], unique=False)

    op.create_table(
        "receipts",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.Column("pickup_date", sa.Date(), nullable=False),
        sa.Column("seller_id", sa.String(length=64), nullable=False),
        sa.Column("seller_name", sa.String(length=100), nullable=False),
        sa.Column("bag_numbers", sa.JSON(), nullable=False),
        sa.Column("driver_id", sa.String(length=64), nullable=False),
        sa.Column("driver_name", sa.String(length=64), nullable=False),
        sa.Column("driver_signature", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("handover_id"),
    )
    op.create_table(
        "disagreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bag_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("tracking_no", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bag_id"],
            ["bags.id"],
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disagreements_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_disagreements_bag_id"), ["bag_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_disagreements_device_id"), ["device_id"], unique=False)

    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bag_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("driver_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bag_id"],
            ["bags.id"],
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scans_bag_id"), ["bag_id"], unique=False)

    op.create_table(
        "weighings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bag_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("grams", sa.Integer(), nullable=False),
        sa.Column("difference_g", sa.Integer(), nullable=True),
        sa.Column("allowance_g", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bag_id"],
            ["bags.id"],
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("weighings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_weighings_bag_id"), ["bag_id"], unique=False)

    with op.batch_alter_table("bags", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seller_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("service", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("pickup_address_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pickup_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("picked_up_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("driver_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("pickup_refused_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("handover_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("arrival_weight_g", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("arrival_difference_g", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("disagreement_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_bags_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bags_handover_id"), ["handover_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bags_picked_up_at"), ["picked_up_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_bags_seller_id"), ["seller_id"], unique=False)
        batch_op.create_foreign_key("fk_bags_handover_id", "handovers", ["handover_id"], ["id"])
        batch_op.create_foreign_key("fk_bags_account_id", "accounts", ["account_id"], ["id"])
        batch_op.create_foreign_key(
            "fk_bags_pickup_address_id", "addresses", ["pickup_address_id"], ["id"]
        )

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), server_default="seller", nullable=False)
        )
        batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pickup_address_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_devices_account_id"), ["account_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_devices_pickup_address_id", "addresses", ["pickup_address_id"], ["id"]
        )
        batch_op.create_foreign_key("fk_devices_account_id", "accounts", ["account_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint("fk_devices_account_id", type_="foreignkey")
        batch_op.drop_constraint("fk_devices_pickup_address_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_devices_account_id"))
        batch_op.drop_column("pickup_address_id")
        batch_op.drop_column("account_id")
        batch_op.drop_column("role")

    with op.batch_alter_table("bags", schema=None) as batch_op:
        batch_op.drop_constraint("fk_bags_pickup_address_id", type_="foreignkey")
        batch_op.drop_constraint("fk_bags_account_id", type_="foreignkey")
        batch_op.drop_constraint("fk_bags_handover_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_bags_seller_id"))
        batch_op.drop_index(batch_op.f("ix_bags_picked_up_at"))
        batch_op.drop_index(batch_op.f("ix_bags_handover_id"))
        batch_op.drop_index(batch_op.f("ix_bags_account_id"))
        batch_op.drop_column("disagreement_count")
        batch_op.drop_column("arrived_at")
        batch_op.drop_column("arrival_difference_g")
        batch_op.drop_column("arrival_weight_g")
        batch_op.drop_column("handover_id")
        batch_op.drop_column("pickup_refused_reason")
        batch_op.drop_column("driver_id")
        batch_op.drop_column("picked_up_at")
        batch_op.drop_column("pickup_due_at")
        batch_op.drop_column("pickup_address_id")
        batch_op.drop_column("service")
        batch_op.drop_column("account_id")
        batch_op.drop_column("seller_id")

    with op.batch_alter_table("weighings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weighings_bag_id"))

    op.drop_table("weighings")
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scans_bag_id"))

    op.drop_table("scans")
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disagreements_device_id"))
        batch_op.drop_index(batch_op.f("ix_disagreements_bag_id"))
        batch_op.drop_index(batch_op.f("ix_disagreements_at"))

    op.drop_table("disagreements")
    op.drop_table("receipts")
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handovers_seller_id"))

    op.drop_table("handovers")
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stores_account_id"))

    op.drop_table("stores")
    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_addresses_account_id"))

    op.drop_table("addresses")
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parcels_status"))
        batch_op.drop_index(batch_op.f("ix_parcels_seller_id"))
        batch_op.drop_index(batch_op.f("ix_parcels_imported_at"))

    op.drop_table("parcels")
    op.drop_table("drivers")
    op.drop_table("accounts")
