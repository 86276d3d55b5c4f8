"""Pickup deadlines: the 16:00 cut-off of paid pickup, service windows, computed in China time."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.domain.deadlines import MILKRUN, PAID, in_service_window, is_late, pickup_due

CHINA = ZoneInfo("Asia/Shanghai")


def china(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 8) -> datetime:
    """A China-time wall clock in 2026, as the UTC instant the gateway stores."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=CHINA).astimezone(UTC)


def test_deadline_is_utc_and_the_default_zone_is_china():
    due = pickup_due(china(5, 9), PAID)
    assert due.utcoffset() == timedelta(0)
    assert due == datetime(2026, 8, 5, 12, 0, tzinfo=UTC)  # 20:00 in China


def test_paid_bag_closed_at_1559_is_due_by_2000_the_same_day():
    assert pickup_due(china(5, 15, 59), PAID) == china(5, 20)


def test_paid_bag_closed_at_1601_is_due_by_2000_the_next_day():
    assert pickup_due(china(5, 16, 1), PAID) == china(6, 20)


def test_paid_bag_closed_at_1600_exactly_is_not_before_1600():
    assert pickup_due(china(5, 16), PAID) == china(6, 20)
    assert pickup_due(china(5, 15, 59, 59), PAID) == china(5, 20)


def test_saturday_is_an_ordinary_day():
    assert china(8, 12).astimezone(CHINA).strftime("%A") == "Saturday"
    assert pickup_due(china(8, 15, 59), PAID) == china(8, 20)  # Saturday 20:00
    assert pickup_due(china(8, 16, 1), PAID) == china(9, 20)  # Sunday 20:00, not Monday


def test_across_midnight_the_local_date_counts_not_the_utc_date():
    # 23:30 China time on Aug 7: after the cut-off, due Aug 8 20:00.
    assert pickup_due(china(7, 23, 30), PAID) == china(8, 20)
    # 00:30 China time on Aug 8 is still Aug 7 in UTC (16:30Z): due the same China day.
    closed = china(8, 0, 30)
    assert closed.date().day == 7
    assert pickup_due(closed, PAID) == china(8, 20)


def test_across_month_end():
    assert pickup_due(china(31, 18), PAID) == china(1, 20, month=9)


def test_milkrun_cutoff_is_1500_and_deadline_1900_product_choice():
    assert pickup_due(china(5, 14, 59), MILKRUN) == china(5, 19)
    assert pickup_due(china(5, 15, 0), MILKRUN) == china(6, 19)
    assert pickup_due(china(5, 6, 0), MILKRUN) == china(5, 19)


def test_deadline_in_the_sellers_own_zone_across_a_dst_change():
    berlin = ZoneInfo("Europe/Berlin")  # CET -> CEST on 2026-03-29
    closed = datetime(2026, 3, 28, 17, 0, tzinfo=berlin).astimezone(UTC)
    assert pickup_due(closed, PAID, "Europe/Berlin") == datetime(2026, 3, 29, 18, tzinfo=UTC)
    assert pickup_due(closed, PAID, berlin).astimezone(berlin).hour == 20


def test_hong_kong_shares_china_time():
    assert pickup_due(china(5, 15), PAID, "Asia/Hong_Kong") == china(5, 20)


def test_the_deadline_keeps_the_callers_offset_object():
    closed = china(5, 15).astimezone(timezone(timedelta(0)))
    assert pickup_due(closed, PAID) == china(5, 20)


@pytest.mark.parametrize(
    ("service", "hour", "minute", "inside"),
    [
        (PAID, 9, 59, False),
        (PAID, 10, 0, True),
        (PAID, 20, 0, True),
        (PAID, 20, 1, False),
        (MILKRUN, 7, 59, False),
        (MILKRUN, 8, 0, True),
        (MILKRUN, 19, 0, True),
        (MILKRUN, 19, 1, False),
    ],
)
def test_service_windows_every_day(service, hour, minute, inside):
    for day in range(3, 10):  # Monday Aug 3 .. Sunday Aug 9
        assert in_service_window(china(day, hour, minute), service) is inside


def test_a_pickup_at_2000_is_on_time_and_one_second_later_is_late():
    closed = china(5, 11)
    assert not is_late(closed, china(5, 20), PAID)
    assert is_late(closed, china(5, 20, 0, 1), PAID)


def test_a_bag_closed_late_in_the_day_is_not_late_that_evening():
    assert not is_late(china(5, 17), china(5, 21), PAID)
    assert is_late(china(5, 17), china(6, 20, 1), PAID)


def test_naive_times_and_unknown_services_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        pickup_due(datetime(2026, 8, 5, 12), PAID)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_late(china(5, 12), datetime(2026, 8, 5, 12), PAID)
    with pytest.raises(ValueError, match="unknown pickup service"):
        pickup_due(china(5, 12), "drone")
