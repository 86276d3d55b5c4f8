"""Online time (上网时间): backdated to the bag's pickup scan, else the hub receipt time."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.domain.online_time import (
    BAG_NOT_SCANNED,
    NO_BAG_DATA,
    PICKUP_SCAN,
    REASONS,
    SCAN_AFTER_RECEIPT,
    online_time,
)

CHINA = ZoneInfo("Asia/Shanghai")


def china(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CHINA).astimezone(UTC)


def test_the_manuals_milkrun_example_to_the_minute():
    # Bag scanned by the driver Aug 8 11:00, parcel received at the hub Aug 9 08:00:
    # at Aug 9 08:00 the parcel shows "picked up" at Aug 8 11:00.
    result = online_time(china(8, 9, 8), "BG2026000123", china(8, 8, 11))
    assert result.at == china(8, 8, 11)
    assert result.at.astimezone(CHINA).strftime("%m-%d %H:%M") == "08-08 11:00"
    assert result.reason == PICKUP_SCAN and result.backdated


def test_the_manuals_paid_pickup_example():
    result = online_time(china(8, 10, 8), "BG2026000123", china(8, 8, 11))
    assert result.at == china(8, 8, 11) and result.reason == PICKUP_SCAN


def test_a_parcel_without_bagging_data_keeps_its_receipt_time():
    result = online_time(china(8, 9, 8), None, None)
    assert result.at == china(8, 9, 8)
    assert result.reason == NO_BAG_DATA and not result.backdated


def test_a_parcel_thrown_into_a_scanned_bag_without_bagging_keeps_its_receipt_time():
    # FAQ 6: physically in the bag, but no bagging record links it to the bag.
    result = online_time(china(8, 9, 8), None, china(8, 8, 11))
    assert result.at == china(8, 9, 8) and result.reason == NO_BAG_DATA


def test_a_bag_never_scanned_at_pickup_gives_receipt_time():
    result = online_time(china(8, 9, 8), "BG2026000123", None)
    assert result.at == china(8, 9, 8) and result.reason == BAG_NOT_SCANNED


def test_a_pickup_scan_after_the_receipt_is_not_trusted():
    result = online_time(china(8, 9, 8), "BG2026000123", china(8, 9, 9))
    assert result.at == china(8, 9, 8) and result.reason == SCAN_AFTER_RECEIPT


def test_every_reason_has_a_text_for_the_admin_page():
    for reason in (PICKUP_SCAN, NO_BAG_DATA, BAG_NOT_SCANNED, SCAN_AFTER_RECEIPT):
        assert REASONS[reason]
    assert "receipt" in online_time(china(8, 9, 8), None, None).explanation
