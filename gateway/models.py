"""The gateway's tables. Schema changes go through a new Alembic migration in migrations/versions."""

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    parcels: Mapped[list["BagParcel"]] = relationship(
        back_populates="bag", order_by="BagParcel.id", cascade="all, delete-orphan"
    )
    history: Mapped[list["BagHistory"]] = relationship(
        back_populates="bag", order_by="BagHistory.id", cascade="all, delete-orphan"
    )


class BagParcel(Base):
    __tablename__ = "bag_parcels"
    __table_args__ = (UniqueConstraint("bag_id", "tracking_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    tracking_no: Mapped[str] = mapped_column(String(64), index=True)
    added_at: Mapped[datetime]
    bag: Mapped[Bag] = relationship(back_populates="parcels")


class BagHistory(Base):
    """Every status change of a bag: when, from what, to what, why and by whom."""

    __tablename__ = "bag_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    cause: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    bag: Mapped[Bag] = relationship(back_populates="history")


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
