"""Arrival at the hub: weight against the bagging weight, within tolerance -> received."""

import pytest

from gateway.domain import lifecycle
from gateway.domain.arrival import Tolerance, check_arrival


def test_within_the_default_tolerance_is_received():
    result = check_arrival(20_000, 20_150)
    assert result.status == lifecycle.RECEIVED and result.ok
    assert result.difference_g == 150
    assert lifecycle.transition(lifecycle.ARRIVED, result.event) == result.status


def test_beyond_tolerance_is_received_with_exception_and_says_by_how_much():
    result = check_arrival(20_000, 19_000)
    assert result.status == lifecycle.RECEIVED_EXCEPTION and not result.ok
    assert result.difference_g == -1000
    assert lifecycle.transition(lifecycle.ARRIVED, result.event) == result.status


def test_grams_only_tolerance_edge():
    only_grams = Tolerance(grams=100, percent=0)
    assert check_arrival(40_000, 40_100, only_grams).ok
    assert not check_arrival(40_000, 40_101, only_grams).ok
    assert not check_arrival(40_000, 39_899, only_grams).ok


def test_percent_only_tolerance_edge():
    one_percent = Tolerance(grams=0, percent=1.0)
    assert check_arrival(40_000, 40_400, one_percent).ok
    assert not check_arrival(40_000, 40_401, one_percent).ok


def test_both_set_the_larger_allowance_applies():
    tolerance = Tolerance(grams=200, percent=2.0)
    assert check_arrival(1_000, 1_200, tolerance).ok  # 2 % would be 20 g; 200 g applies
    assert check_arrival(50_000, 51_000, tolerance).ok  # 2 % = 1000 g applies
    assert not check_arrival(50_000, 51_001, tolerance).ok
    assert check_arrival(50_000, 51_000, tolerance).allowance_g == 1000


def test_bad_settings_and_weights_are_refused():
    with pytest.raises(ValueError):
        Tolerance(grams=-1)
    with pytest.raises(ValueError):
        check_arrival(-5, 100)
