"""The hub's weighing of an arrived bag against its bagging weight -> received or exception."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.lifecycle import RECEIVE, RECEIVE_WITH_EXCEPTION, RECEIVED, RECEIVED_EXCEPTION


@dataclass(frozen=True)
class Tolerance:
    """How far the arrival weight may differ from the bagging weight.

    With both set, the larger allowance applies ("200 g or 2 %, whichever is more"): grams
    cover scale noise on light bags, percent covers moisture and scale spread on heavy ones.
    Set one to 0 to use only the other. (product choice) defaults 200 g / 2 %.
    """

    grams: int = 200
    percent: float = 2.0

    def __post_init__(self) -> None:
        if self.grams < 0 or self.percent < 0:
            raise ValueError("tolerance must not be negative")

    def allowance_g(self, bagging_weight_g: int) -> float:
        return max(float(self.grams), bagging_weight_g * self.percent / 100.0)


@dataclass(frozen=True)
class ArrivalCheck:
    status: str  # lifecycle.RECEIVED or lifecycle.RECEIVED_EXCEPTION
    event: str  # the lifecycle event that leads there
    difference_g: int  # arrival - bagging: negative means the bag got lighter
    allowance_g: float

    @property
    def ok(self) -> bool:
        return self.status == RECEIVED


def check_arrival(
    bagging_weight_g: int, arrival_weight_g: int, tolerance: Tolerance = Tolerance()
) -> ArrivalCheck:
    """Compare the hub's weight with the bagging weight; within tolerance -> received."""
    if bagging_weight_g < 0 or arrival_weight_g < 0:
        raise ValueError("weights must not be negative")
    difference = arrival_weight_g - bagging_weight_g
    allowance = tolerance.allowance_g(bagging_weight_g)
    if abs(difference) <= allowance:
        return ArrivalCheck(RECEIVED, RECEIVE, difference, allowance)
    return ArrivalCheck(RECEIVED_EXCEPTION, RECEIVE_WITH_EXCEPTION, difference, allowance)
