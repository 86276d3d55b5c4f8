"""Pickup deadlines and service windows, computed in the seller's time zone (domain.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

MILKRUN = "milkrun"
PAID = "paid"

# domain.md, "Time zone": all manual times are China time; (product choice) compute in the
# seller's zone, store UTC.
DEFAULT_TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Service:
    """A pickup service's daily window (every day, Mon-Sun) and its same-day cut-off."""

    opens: time
    closes: time
    # A bag closed before `cutoff` is due by `closes` the same day, otherwise the next day.
    cutoff: time


SERVICES: dict[str, Service] = {
    # Paid pickup: "Mon-Sun 10:00-20:00"; "before 16:00 -> by 20:00 the same day, later ->
    # by 20:00 the next day".
    PAID: Service(opens=time(10, 0), closes=time(20, 0), cutoff=time(16, 0)),
    # Milkrun: "Mon-Sun 08:00-19:00". The manual gives no deadline (the driver comes at the
    # agreed time). (product choice) The same rule as paid pickup, shifted to Milkrun's
    # window: the same 4 hours of lead before the window ends, so a bag closed before
    # 15:00 is due by 19:00 the same day, later by 19:00 the next day.
    MILKRUN: Service(opens=time(8, 0), closes=time(19, 0), cutoff=time(15, 0)),
}


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _service(service: str) -> Service:
    try:
        return SERVICES[service]
    except KeyError:
        raise ValueError(
            f"unknown pickup service {service!r}; use one of {sorted(SERVICES)}"
        ) from None


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (the gateway stores UTC)")
    return at


def pickup_due(closed_at_utc: datetime, service: str, tz: str | ZoneInfo = DEFAULT_TZ) -> datetime:
    """When the bag must be picked up by (UTC), given when the seller closed (submitted) it."""
    rule = _service(service)
    zone = _zone(tz)
    local = _aware(closed_at_utc, "closed_at_utc").astimezone(zone)
    day = local.date()
    if local.time() >= rule.cutoff:  # "before 16:00": 16:00:00 itself is already late
        day += timedelta(days=1)
    # Build the wall-clock deadline in the zone, then convert: right across DST changes too.
    return datetime.combine(day, rule.closes, tzinfo=zone).astimezone(closed_at_utc.tzinfo)


def in_service_window(at_utc: datetime, service: str, tz: str | ZoneInfo = DEFAULT_TZ) -> bool:
    """True when `at_utc` falls in the service's daily hours, seller's local time.

    The window includes its end minute's start: a scan at 20:00:00 meets a "by 20:00" deadline.
    """
    rule = _service(service)
    local = _aware(at_utc, "at_utc").astimezone(_zone(tz)).time()
    return rule.opens <= local <= rule.closes


def is_late(
    closed_at_utc: datetime,
    picked_up_at_utc: datetime,
    service: str,
    tz: str | ZoneInfo = DEFAULT_TZ,
) -> bool:
    """True when the pickup (or, for a bag still waiting, `now`) is after the deadline."""
    _aware(picked_up_at_utc, "picked_up_at_utc")
    return picked_up_at_utc > pickup_due(closed_at_utc, service, tz)
