"""The gateway's tables. Schema changes go through a new Alembic migration in migrations/versions."""

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from gateway import clock


def utcnow() -> datetime:
    """The gateway's clock (gateway/clock.py), for the columns' defaults too."""
    return clock.now()


class UTCDateTime(TypeDecorator):
    """Timestamps are stored in UTC and come back timezone-aware on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: store UTC-aware times only")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}


class Device(Base):
    """A handheld: its MQTT credential, its bag-number range and its sync position."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    bag_range_lo: Mapped[int] = mapped_column(BigInteger)
    bag_range_hi: Mapped[int] = mapped_column(BigInteger)
    # Highest sequence number up to which every record is stored and applied: the ack we send.
    applied_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime | None]
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[dict | None] = mapped_column(JSON)
    # What the handheld is used for: "seller" (bagging and handover at a seller's warehouse)
    # or "hub" (arrival weighing at a sorting center). Bags opened on a seller device belong
    # to its account and are picked up at its pickup address.
    role: Mapped[str] = mapped_column(String(16), default="seller", server_default="seller")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    pickup_address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    # The version of the last config or delta sent to it (migration 0011); its status says
    # which one it has taken (docs/protocol.md, "Config versions").
    config_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The language of the handheld's screens (migrations 0014, 0016; issue 18), sent in its
    # config (gateway/services/device_config.py): Chinese, the first mile's, unless an admin
    # chooses English (docs/firmware.md, "Languages").
    language: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")


class IngestMember(Base):
    """A live gateway instance of a partitioned ingest and the device buckets it subscribes to
    (gateway/ingest/partition.py): beat grows while it lives."""

    __tablename__ = "ingest_members"
    instance: Mapped[str] = mapped_column(String(128), primary_key=True)
    beat: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[list] = mapped_column(JSON, default=list)


class Record(Base):
    """A journal record as the device sent it; (device, seq) makes storage idempotent.

    Sequence numbers never repeat on a device across boots, so (device, seq) is at least as
    strict as (device, boot, seq).
    """

    __tablename__ = "records"
    __table_args__ = (UniqueConstraint("device_id", "seq"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    boot: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    ticks: Mapped[int] = mapped_column(BigInteger)
    wall: Mapped[int] = mapped_column(BigInteger)
    clock_ok: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The device's time for the action, as the gateway reconstructs it (UTC).
    occurred_at: Mapped[datetime]
    # The bag the record names (body "bag"): a late record's bag is replayed from these
    # (gateway/ingest/replay.py). Filled from the body when not given.
    bag_no: Mapped[str | None] = mapped_column(
        String(32), index=True, default=lambda ctx: _body_text(ctx, "bag", 32)
    )
    # The parcel the record names (body "trk"): every bag that ever claimed a parcel, one that
    # took it out again too, is found from these (registry lateness, replay; migration 0012).
    tracking_no: Mapped[str | None] = mapped_column(
        String(64), index=True, default=lambda ctx: _body_text(ctx, "trk", 64)
    )


def _body_text(ctx, name: str, longest: int) -> str | None:
    value = (ctx.get_current_parameters().get("body") or {}).get(name)
    return value if isinstance(value, str) and len(value) <= longest else None


class Bag(Base):
    __tablename__ = "bags"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_no: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    status: Mapped[str] = mapped_column(String(24), index=True)
    parcel_count: Mapped[int] = mapped_column(Integer, default=0)
    weight_g: Mapped[int | None] = mapped_column(Integer)
    dims_cm: Mapped[list | None] = mapped_column(JSON)
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(index=True)  # migration 0005
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # The seller of the bag's first parcel (a bag may mix stores linked under one account).
    seller_id: Mapped[str | None] = mapped_column(String(32), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    service: Mapped[str | None] = mapped_column(String(16))  # milkrun | paid
    pickup_address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    # When the driver must take it (domain.deadlines.pickup_due), set when the bag is closed.
    pickup_due_at: Mapped[datetime | None]
    # The device time of the driver's pickup scan: the bag's legal pickup time (docs/domain.md).
    picked_up_at: Mapped[datetime | None] = mapped_column(index=True)
    # The driver id as the device reported it; not a foreign key, so that a scan by a driver
    # the gateway does not know is still kept (and flagged as a disagreement).
    driver_id: Mapped[str | None] = mapped_column(String(64))
    pickup_refused_reason: Mapped[str | None] = mapped_column(String(16))  # wire.REFUSE_REASONS
    handover_id: Mapped[int | None] = mapped_column(ForeignKey("handovers.id"), index=True)
    arrival_weight_g: Mapped[int | None] = mapped_column(Integer)
    arrival_difference_g: Mapped[int | None] = mapped_column(Integer)  # arrival - bagging
    arrived_at: Mapped[datetime | None] = mapped_column(index=True)  # migration 0005
    disagreement_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Parcels the device put in that the gateway refused (bag_parcels.held_out): not members.
    held_out_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The latest event applied to the bag, as (time, tie) of gateway/ingest/replay.py: an
    # earlier one arriving later makes the bag be replayed (migration 0007).
    last_at: Mapped[datetime | None]
    last_tie: Mapped[str | None] = mapped_column(String(120))
    # The members only; held_out_parcels the parcels the gateway held out, with their reason.
    parcels: Mapped[list["BagParcel"]] = relationship(
        primaryjoin="and_(Bag.id == BagParcel.bag_id, BagParcel.held_out.is_(None))",
        order_by="BagParcel.id",
        viewonly=True,
    )
    held_out_parcels: Mapped[list["BagParcel"]] = relationship(
        primaryjoin="and_(Bag.id == BagParcel.bag_id, BagParcel.held_out.is_not(None))",
        order_by="BagParcel.id",
        viewonly=True,
    )
    history: Mapped[list["BagHistory"]] = relationship(
        back_populates="bag", order_by="BagHistory.id", cascade="all, delete-orphan"
    )
    disagreements: Mapped[list["Disagreement"]] = relationship(
        back_populates="bag", order_by="Disagreement.id"
    )


class BagParcel(Base):
    __tablename__ = "bag_parcels"
    __table_args__ = (UniqueConstraint("bag_id", "tracking_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    tracking_no: Mapped[str] = mapped_column(String(64), index=True)
    added_at: Mapped[datetime]
    # None: a member. Else the code the gateway refused it with (a protocol.rules code, or
    # registry.UNKNOWN_PARCEL): the device put it in, the seller must take it out (migration 0007).
    held_out: Mapped[str | None] = mapped_column(String(32))
    bag: Mapped[Bag] = relationship()


class BagHistory(Base):
    """Every status change of a bag: when, from what, to what, why and by whom."""

    __tablename__ = "bag_history"
    # The auto-close finds each bag's latest move to awaiting_pickup (migration 0009).
    __table_args__ = (Index("ix_bag_history_to_status", "to_status", "bag_id", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    cause: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    bag: Mapped[Bag] = relationship(back_populates="history")


class BagEvent(Base):
    """A lifecycle event the gateway applied to a bag (a cancel, a manual event, the system's
    close), kept so that a replay applies it again at its time; `applied` false when a late
    record made it impossible there (the bag's revisions say so)."""

    __tablename__ = "bag_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(24))
    cause: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    applied: Mapped[bool] = mapped_column(Boolean)


class Revision(Base):
    """A derived fact recomputed because a late record arrived: a bag's status, members or
    arrival verdict, a parcel's online time (gateway/ingest/replay.py)."""

    __tablename__ = "revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int | None] = mapped_column(ForeignKey("bags.id"), index=True)
    tracking_no: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[datetime]  # gateway time of the recomputation
    cause: Mapped[str] = mapped_column(Text)  # the late record or event
    change: Mapped[str] = mapped_column(Text)  # what changed, "before -> after"


class User(Base):
    """A person on the admin page; the password is stored as a salted hash only."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin | dispatcher | viewer
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """Failed logins, kept to throttle password guessing per username and per address."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)


class Account(Base):
    """A seller account under which stores are linked for cross-store bagging (docs/domain.md)."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Cut-offs and service hours are computed in the seller's zone (docs/domain.md, "Time zone").
    tz: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stores: Mapped[list["Store"]] = relationship(
        back_populates="account", order_by="Store.seller_id"
    )


class Address(Base):
    """A pickup address of an account's warehouse, or a seller's return address.

    kind "pickup": service milkrun (one approved address per account) or paid (several,
    told apart by warehouse name). kind "return": referenced by Store.return_address_id,
    which makes it one per seller.
    """

    __tablename__ = "addresses"
    __table_args__ = (UniqueConstraint("account_id", "kind", "warehouse_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # pickup | return
    service: Mapped[str | None] = mapped_column(String(16))  # milkrun | paid (pickup only)
    warehouse_name: Mapped[str] = mapped_column(String(100))
    contact: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    province: Mapped[str] = mapped_column(String(32), default="")
    city: Mapped[str] = mapped_column(String(32), default="")
    district: Mapped[str] = mapped_column(String(32), default="")
    street: Mapped[str] = mapped_column(Text, default="")
    # Milkrun: the pickup window agreed with the seller, "HH:MM-HH:MM" local time
    # (domain.deadlines.Window); the driver comes then (migration 0009).
    pickup_window: Mapped[str | None] = mapped_column(String(11))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def one_line(self) -> str:
        return " ".join(p for p in (self.province, self.city, self.district, self.street) if p)


class Store(Base):
    """A platform store (seller id + seller name), linked under one account.

    Linking takes the pair; a pair that does not match the platform's name is refused.
    """

    __tablename__ = "stores"
    seller_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seller_name: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    # The manual: one return address per seller; parcels the hub cannot take go back there.
    return_address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    linked_at: Mapped[datetime | None]
    account: Mapped[Account | None] = relationship(back_populates="stores")
    return_address: Mapped[Address | None] = relationship()


class Parcel(Base):
    """A parcel as imported from the platform, and what the hub later made of it."""

    __tablename__ = "parcels"
    tracking_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Not a foreign key: the platform may send parcels of stores not yet set up here.
    seller_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|rts|cancelled|received
    hub: Mapped[str] = mapped_column(String(8))  # SZ | YW | FM-49 | HK | KR
    sea_big_item: Mapped[bool] = mapped_column(Boolean, default=False)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime | None]  # hub receipt time
    online_at: Mapped[datetime | None]  # 上网时间 (domain.online_time)
    online_reason: Mapped[str | None] = mapped_column(String(24))  # online_time reason code
    # The status the hub receipt replaced: a bagging record older than the receipt is
    # re-checked against it (migration 0007).
    status_before_receipt: Mapped[str | None] = mapped_column(String(16))


class Driver(Base):
    """A driver or courier who scans bags at the seller's door and signs handovers.

    The 32-byte HMAC key is kept only wrapped: `key_sealed` under the gateway's SECRET_KEY
    (to verify signatures), and `pin_key` under the driver's PIN (for the handhelds, which
    unlock it with the PIN). The PIN itself is not kept. See gateway/services/couriers.py.
    """

    __tablename__ = "drivers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    badge: Mapped[str] = mapped_column(String(32), default="")
    key_sealed: Mapped[str] = mapped_column(String(64))  # hex, key XOR HMAC(secret, id)
    pin_salt: Mapped[str] = mapped_column(String(16))  # hex of 8 random bytes
    pin_check: Mapped[str] = mapped_column(String(16))  # hex(sha256(salt + pin))[:16]
    pin_key: Mapped[str] = mapped_column(String(64))  # hex(key XOR sha256(salt+"key"+pin))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DriverAccount(Base):
    """A seller account on a driver's route: the devices of that account carry the driver in
    their config, and the driver signs that account's handovers (gateway/services/couriers.py,
    migration 0010). A driver on no route is in no config and signs nowhere."""

    __tablename__ = "driver_accounts"
    driver_id: Mapped[str] = mapped_column(ForeignKey("drivers.id"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True, index=True)


class Disagreement(Base):
    """A device decision the gateway's re-check does not share, or a record that cannot apply.

    The device's fact is kept as it sent it; this row says what the gateway thinks instead.
    """

    __tablename__ = "disagreements"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int | None] = mapped_column(ForeignKey("bags.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"), index=True)
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"))
    at: Mapped[datetime] = mapped_column(index=True)
    code: Mapped[str] = mapped_column(String(32))  # a rules.* code or a registry code
    message: Mapped[str] = mapped_column(Text)
    tracking_no: Mapped[str | None] = mapped_column(String(64), index=True)
    # The bag number the record names, also when no such bag is known (migration 0007).
    bag_no: Mapped[str | None] = mapped_column(String(32), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)  # migration 0008
    bag: Mapped[Bag | None] = relationship(back_populates="disagreements")


class Scan(Base):
    """A driver's pickup scan or refusal of a bag at the seller's door (wire pickup records)."""

    __tablename__ = "scans"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"))
    kind: Mapped[str] = mapped_column(String(8))  # pickup | refuse
    driver_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(16))  # refusals: wire.REFUSE_REASONS
    at: Mapped[datetime]


class Weighing(Base):
    """A weight of a bag: at bagging (the seller's scale) or at arrival (the hub's)."""

    __tablename__ = "weighings"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"))
    kind: Mapped[str] = mapped_column(String(8))  # bagging | arrival
    grams: Mapped[int] = mapped_column(Integer)
    difference_g: Mapped[int | None] = mapped_column(Integer)  # arrival - bagging weight
    allowance_g: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime]


class Handover(Base):
    """A handover of bags from a seller to a driver, as signed on the handheld."""

    __tablename__ = "handovers"
    __table_args__ = (UniqueConstraint("device_id", "device_handover_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    device_handover_id: Mapped[str] = mapped_column(String(64))  # wire "hid"
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"))
    driver_id: Mapped[str] = mapped_column(String(64))
    seller_id: Mapped[str] = mapped_column(String(64), index=True)
    pickup_date: Mapped[date] = mapped_column(Date)
    bag_numbers: Mapped[list] = mapped_column(JSON)
    bag_count: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(String(64))
    signature_ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime]
    receipt: Mapped["Receipt | None"] = relationship(back_populates="handover")


class Receipt(Base):
    """The handover receipt (交接单): the signed fields, frozen; three copies derive from it.

    Each copy's verification token is computed from these fields with the gateway's secret
    (domain.receipts.copy_token), so any change to a field makes verification fail.
    """

    __tablename__ = "receipts"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # Receipt.receipt_id
    handover_id: Mapped[int] = mapped_column(ForeignKey("handovers.id"), unique=True)
    pickup_date: Mapped[date] = mapped_column(Date)
    seller_id: Mapped[str] = mapped_column(String(64))
    seller_name: Mapped[str] = mapped_column(String(100))
    bag_numbers: Mapped[list] = mapped_column(JSON)
    # Bags of the signed list that the gateway refused to hand over, each {bag, code, reason}
    # (gateway/ingest/registry.py _handover_refusal); null before migration 0006.
    refused_bags: Mapped[list | None] = mapped_column(JSON)
    driver_id: Mapped[str] = mapped_column(String(64))
    driver_name: Mapped[str] = mapped_column(String(64))
    driver_signature: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    handover: Mapped[Handover] = relationship(back_populates="receipt")


class AdminSession(Base):
    """A logged-in browser. The cookie holds the token; only its SHA-256 is stored."""

    __tablename__ = "admin_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    remote_addr: Mapped[str] = mapped_column(String(64))


class AuditEntry(Base):
    """One action a person took on the admin page: who, what, when, the state before and after.

    Written in the same transaction as the action (gateway/services/audit.py), so an action that
    is rolled back leaves no entry and an entry never describes an action that did not happen.
    """

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)


class ExceptionResolution(Base):
    """An exception of the queue (gateway/services/exceptions.py) marked resolved by a person.

    (kind, ref) names the exception, e.g. ("late_pickup", bag number); the queue lists only
    exceptions without a row here.
    """

    __tablename__ = "exception_resolutions"
    __table_args__ = (UniqueConstraint("kind", "ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    ref: Mapped[str] = mapped_column(String(120))
    resolved_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_by: Mapped[str] = mapped_column(String(64))
    why: Mapped[str] = mapped_column(Text)


class FirmwareRelease(Base):
    """A signed firmware release (issue 19, docs/ota.md): the packed bundle the handhelds fetch
    in chunks, its hash and the release key's signature of it (devkit/release.py)."""

    __tablename__ = "firmware_releases"
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(512))  # hex, RSA-2048
    size: Mapped[int] = mapped_column(Integer)
    packed: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_by: Mapped[str | None] = mapped_column(String(64))


class DeviceUpdate(Base):
    """A handheld's update to a release since it was rolled out: its state (docs/ota.md,
    "States") and how far the fetch got, for the rollout page."""

    __tablename__ = "device_updates"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("firmware_releases.version"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
