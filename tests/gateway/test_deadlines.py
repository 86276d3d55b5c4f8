"""Pickup deadlines: the 16:00 cut-off of paid pickup, Milkrun's agreed window within the
service hours, and transit time, computed in China time."""

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.domain.deadlines import (
    MILKRUN,
    PAID,
    Window,
    is_late,
    pickup_due,
    transit_overdue,
)

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


def test_sunday_is_an_ordinary_day_too():
    assert china(9, 12).astimezone(CHINA).strftime("%A") == "Sunday"
    assert pickup_due(china(9, 15, 59), PAID) == china(9, 20)  # Sunday 20:00
    assert pickup_due(china(9, 16, 1), PAID) == china(10, 20)  # Monday 20:00


AGREED = Window(time(10, 0), time(12, 0))  # the seller's Milkrun agreement: 10:00-12:00


def test_milkrun_is_due_by_the_end_of_the_window_agreed_with_the_seller():
    assert pickup_due(china(5, 9, 59), MILKRUN, window=AGREED) == china(5, 12)
    # Closed once the window began: the driver may have come and gone, so the next day's.
    assert pickup_due(china(5, 10, 0), MILKRUN, window=AGREED) == china(6, 12)
    assert pickup_due(china(5, 15, 59), MILKRUN, window=AGREED) == china(6, 12)


def test_milkrun_without_an_agreed_window_has_no_deadline():
    # The manual: "the driver comes at the agreed time"; it gives no cut-off of its own.
    assert pickup_due(china(5, 9), MILKRUN) is None
    assert not is_late(china(5, 9), china(9, 9), MILKRUN)


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ("08:00-19:00", True),
        ("10:00-12:00", True),
        ("07:30-09:00", False),
        ("17:00-19:30", False),
        ("12:00-10:00", False),
        ("10:00-10:00", False),
    ],
)
def test_an_agreed_window_lies_in_milkruns_service_hours(text, inside):
    window = Window.parse(text)
    assert str(window) == text
    assert window.within(MILKRUN) is inside


@pytest.mark.parametrize("text", ["10:00", "ten-twelve", "10:00-12:00-14:00", ""])
def test_a_window_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError, match="pickup window"):
        Window.parse(text)


def test_a_bag_in_transit_past_72_hours_is_overdue_faq_9():
    picked = china(8, 11)
    assert not transit_overdue(picked, False, picked + timedelta(hours=72))
    assert transit_overdue(picked, False, picked + timedelta(hours=72, seconds=1))
    assert not transit_overdue(picked, True, picked + timedelta(days=9))  # it arrived
    assert not transit_overdue(None, False, picked + timedelta(days=9))  # never picked up


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
