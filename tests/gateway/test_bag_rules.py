"""The gateway's re-check of adding a parcel to a bag: the manual's limits and scan errors."""

import pytest

from gateway.domain import bag_rules
from gateway.domain.bag_rules import BagFacts, ParcelFacts, check_add, refusals
from protocol import rules

LINKED = frozenset({"S1", "S2"})


def parcel(n: int = 0, **facts) -> ParcelFacts:
    base = dict(tracking_no=f"LZ{n:010d}", seller_id="S1", status="rts", hub="SZ")
    return ParcelFacts(**(base | facts))


def bag(count: int = 0, **facts) -> BagFacts:
    base = dict(
        bag_no="BG1",
        tracking_nos=[f"LZ{n:010d}" for n in range(1, count + 1)],
        hubs=["SZ"] * count,
        linked_seller_ids=LINKED,
    )
    return BagFacts(**(base | facts))


def test_limits_and_codes_are_the_protocols_one_definition():
    assert bag_rules.MAX_PARCELS is rules.MAX_PARCELS == 300
    assert bag_rules.MAX_WEIGHT_G is rules.MAX_WEIGHT_G == 50_000
    assert (bag_rules.MAX_SIDE_CM, bag_rules.MAX_SIDES_SUM_CM) == (120, 180)
    assert len(rules.RULES) == len(set(rules.RULES)) == 12
    assert rules.CODES[: len(rules.RULES)] == rules.RULES
    assert len(rules.CODES) == len(set(rules.CODES))
    # Every rule the gateway re-checks has a message for the admin page.
    assert set(bag_rules.MESSAGES) == set(rules.RULES)


def test_a_good_parcel_goes_in():
    assert check_add(parcel(), bag()) is None


def test_the_300th_parcel_goes_in_and_the_301st_is_refused():
    assert check_add(parcel(300), bag(299)) is None
    assert check_add(parcel(301), bag(300)) == rules.BAG_FULL


def test_50_00_kg_is_allowed_and_50_01_kg_is_refused():
    assert check_add(parcel(weight_g=1_000), bag(weight_g=49_000)) is None
    assert check_add(parcel(weight_g=1_010), bag(weight_g=49_000)) == rules.OVERWEIGHT
    assert check_add(parcel(), bag(weight_g=50_000)) is None
    assert check_add(parcel(), bag(weight_g=50_010)) == rules.OVERWEIGHT


@pytest.mark.parametrize(
    ("dims", "code"),
    [
        ((119, 30, 31), None),  # 119 cm side, 180 cm in all
        ((120, 30, 30), rules.OVERSIZE),  # a side must be < 120 cm
        ((119.9, 30, 30), None),
        ((60, 60, 60), None),  # 180 cm in all is allowed
        ((60, 60, 61), rules.OVERSIZE),  # 181 cm is not
        ((119, 31, 31), rules.OVERSIZE),
    ],
)
def test_bag_size_limits(dims, code):
    assert check_add(parcel(), bag(dims_cm=dims)) == code


def test_unknown_bag_size_is_not_held_against_the_parcel():
    assert check_add(parcel(), bag(dims_cm=None)) is None


def test_scanning_the_same_parcel_twice_is_a_duplicate():
    assert check_add(parcel(1), bag(3)) == rules.DUPLICATE


def test_a_parcel_in_another_bag_is_refused():
    assert check_add(parcel(in_bag="BG9"), bag()) == rules.IN_OTHER_BAG
    assert check_add(parcel(in_bag="BG1"), bag()) is None  # re-sent add of this bag


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("pending", rules.NOT_RTS),
        ("cancelled", rules.CANCELLED),
        ("received", rules.ALREADY_RECEIVED),
    ],
)
def test_parcel_status_errors(status, code):
    assert check_add(parcel(status=status), bag()) == code


def test_a_store_not_linked_to_the_account_is_refused():
    assert check_add(parcel(seller_id="S2"), bag()) is None
    assert check_add(parcel(seller_id="S3"), bag()) == rules.STORE_NOT_LINKED


@pytest.mark.parametrize("hub", ["FM-49", "HK", "KR"])
def test_only_shenzhen_and_yiwu_channels_may_be_bagged(hub):
    assert check_add(parcel(hub=hub), bag()) == rules.HUB_NOT_BAGGABLE


def test_yiwu_parcels_may_be_bagged():
    assert check_add(parcel(hub="YW"), bag()) is None


def test_big_item_sea_freight_is_refused():
    assert check_add(parcel(sea_big_item=True), bag()) == rules.SEA_BIG_ITEM


def test_fm49_parcels_do_not_mix_with_others_when_fm49_is_baggable():
    open_fm49 = {"baggable_hubs": ("SZ", "YW", "FM-49")}
    assert check_add(parcel(hub="FM-49"), bag(2, **open_fm49)) == rules.FM49_MIX
    fm49_bag = bag(2, hubs=["FM-49", "FM-49"], **open_fm49)
    assert check_add(parcel(hub="SZ"), fm49_bag) == rules.FM49_MIX
    assert check_add(parcel(hub="FM-49"), fm49_bag) is None


def test_the_first_refusal_is_about_the_parcel_and_all_are_listed():
    cancelled = parcel(301, status="cancelled", seller_id="S9")
    assert check_add(cancelled, bag(300)) == rules.CANCELLED
    assert refusals(cancelled, bag(300)) == (
        rules.CANCELLED,
        rules.STORE_NOT_LINKED,
        rules.BAG_FULL,
    )


def test_unknown_parcel_facts_are_refused():
    with pytest.raises(ValueError):
        parcel(status="shipped")
    with pytest.raises(ValueError):
        parcel(hub="XX")
