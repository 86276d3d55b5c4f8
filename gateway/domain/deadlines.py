"""Pickup deadlines, service hours, Milkrun pickup windows and transit time, computed in the
seller's time zone (docs/domain.md).

The manual uses the service hours twice: a Milkrun pickup window must lie in them
(`Window.within`), and paid pickup is due by their end (`pickup_due`). It never judges a
single moment against them (a scan at 20:05 is a late pickup, not a refused one), so there is
no such check here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

MILKRUN = "milkrun"
PAID = "paid"

# docs/domain.md, "Time zone": all manual times are China time; (product choice) compute in the
# seller's zone, store UTC.
DEFAULT_TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Service:
    """A pickup service's daily hours (every day, Mon-Sun) and its same-day cut-off."""

    opens: time
    closes: time
    # A bag closed before `cutoff` is due by `closes` the same day, otherwise the next day.
    # None: the manual gives no cut-off; the pickup window agreed with the seller decides.
    cutoff: time | None


SERVICES: dict[str, Service] = {
    # Paid pickup: "Mon-Sun 10:00-20:00"; "before 16:00 -> by 20:00 the same day, later ->
    # by 20:00 the next day".
    PAID: Service(opens=time(10, 0), closes=time(20, 0), cutoff=time(16, 0)),
    # Milkrun: "Mon-Sun 08:00-19:00", and "the driver comes at the agreed time": the window
    # agreed with the seller (Window, a field of the pickup address) lies in these hours.
    MILKRUN: Service(opens=time(8, 0), closes=time(19, 0), cutoff=None),
}


@dataclass(frozen=True)
class Window:
    """The Milkrun pickup window of the seller's agreement, local time: the driver comes
    between `starts` and `ends`. (product choice) A bag closed before `starts` is due by
    `ends` the same day; a bag closed once the window has begun, by `ends` the next day."""

    starts: time
    ends: time

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse "HH:MM-HH:MM" (ValueError if it is not; `within` checks the times)."""
        try:
            starts, ends = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except (ValueError, TypeError):
            raise ValueError("a pickup window is HH:MM-HH:MM, e.g. 10:00-12:00") from None
        return cls(starts, ends)

    def __str__(self) -> str:
        return f"{self.starts:%H:%M}-{self.ends:%H:%M}"

    def within(self, service: str) -> bool:
        """True when the window lies in the service's daily hours and ends after it starts."""
        rule = _service(service)
        return rule.opens <= self.starts < self.ends <= rule.closes


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


def pickup_due(
    closed_at_utc: datetime,
    service: str,
    tz: str | ZoneInfo = DEFAULT_TZ,
    window: Window | None = None,
) -> datetime | None:
    """When the bag must be picked up by (UTC), given when the seller closed (submitted) it.

    Milkrun needs the agreed `window`: without one there is no deadline (None).
    """
    rule = _service(service)
    if rule.cutoff is not None:
        cutoff, by = rule.cutoff, rule.closes
    elif window is not None:
        cutoff, by = window.starts, window.ends
    else:
        return None
    zone = _zone(tz)
    local = _aware(closed_at_utc, "closed_at_utc").astimezone(zone)
    day = local.date()
    if local.time() >= cutoff:  # "before 16:00": 16:00:00 itself is already late
        day += timedelta(days=1)
    # Build the wall-clock deadline in the zone, then convert: right across DST changes too.
    return datetime.combine(day, by, tzinfo=zone).astimezone(closed_at_utc.tzinfo)


def is_late(
    closed_at_utc: datetime,
    picked_up_at_utc: datetime,
    service: str,
    tz: str | ZoneInfo = DEFAULT_TZ,
    window: Window | None = None,
) -> bool:
    """True when the pickup (or, for a bag still waiting, `now`) is after the deadline."""
    _aware(picked_up_at_utc, "picked_up_at_utc")
    due = pickup_due(closed_at_utc, service, tz, window)
    return due is not None and picked_up_at_utc > due


# FAQ 9: bags reach the sorting center 24-72 h after the pickup.
TRANSIT_MAX = timedelta(hours=72)


def transit_overdue(picked_up_at_utc: datetime | None, arrived: bool, now: datetime) -> bool:
    """True when a picked-up bag (or parcel) has not arrived more than 72 h after its pickup."""
    if picked_up_at_utc is None or arrived:
        return False
    return _aware(now, "now") - _aware(picked_up_at_utc, "picked_up_at_utc") > TRANSIT_MAX
