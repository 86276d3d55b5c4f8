"""The system closes a bag not picked up for CLOSE_AFTER_HOURS after it became awaiting_pickup,
inside the gateway on a schedule, by the gateway's clock; never a bag still open on a handheld."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from test_registry import bag_and_close, load_bag

from gateway import auto_close, clock, db
from gateway.domain import lifecycle
from gateway.models import Bag
from gateway.services import bags

# Wednesday Aug 5 2026, 10:00 in Shenzhen: the seller closes the bag on the handheld.
CLOSED = datetime(2026, 8, 5, 2, 0, tzinfo=UTC)
HOURS_72 = timedelta(hours=72)


@pytest.fixture
def frozen(app):
    """The gateway's clock stopped at CLOSED (gateway/clock.py), running again afterwards."""
    clock.freeze(CLOSED)
    yield clock
    clock.init_app(app)


def closed_bag(world, n=0, at=CLOSED):
    bag_no = world.seller.bag(n)
    bag_and_close(world.seller, bag_no, world.parcels[n : n + 1], at=at - timedelta(minutes=2))
    return bag_no


def test_a_bag_72_hours_awaiting_pickup_is_closed_by_the_system(app, world, frozen):
    bag_no = closed_bag(world)
    frozen.advance(HOURS_72 - timedelta(seconds=1))
    assert auto_close.sweep(app) == []
    frozen.advance(timedelta(seconds=1))
    assert auto_close.sweep(app) == [bag_no]
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.CLOSED
    closing, closed = bag.history[-2:]
    assert (closing.to_status, closed.to_status) == ("closing", "closed")
    assert closed.actor == "system" and closed.at == CLOSED + HOURS_72
    assert "72 h" in closing.cause


def test_the_age_counts_from_awaiting_pickup_not_from_the_bags_creation(app, world, frozen):
    bag_no = world.seller.bag(0)
    opened = CLOSED - timedelta(hours=48)  # filled over two days, then closed
    world.seller.send("bag_open", opened, bag=bag_no)
    world.seller.send("parcel", opened + timedelta(minutes=1), bag=bag_no, trk=world.parcels[0])
    world.seller.send("bag_close", CLOSED, bag=bag_no, n=1, g=900, dims=[60, 40, 30])
    frozen.advance(timedelta(hours=71))  # 119 h after it was opened
    assert auto_close.sweep(app) == []
    frozen.advance(timedelta(hours=1))
    assert auto_close.sweep(app) == [bag_no]


def test_a_bag_still_open_on_its_handheld_is_never_closed(app, world, frozen):
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", CLOSED, bag=bag_no)
    world.seller.send("parcel", CLOSED, bag=bag_no, trk=world.parcels[0])
    frozen.advance(timedelta(days=30))
    assert auto_close.sweep(app) == []
    # The seller closes it a month later: accepted, and it waits for its driver.
    world.seller.send("bag_close", clock.now(), bag=bag_no, n=1, g=900, dims=[60, 40, 30])
    assert load_bag(app, bag_no).status == lifecycle.AWAITING_PICKUP


def test_a_refused_pickup_retried_counts_from_the_retry(app, world, frozen):
    bag_no = closed_bag(world)
    world.seller.send(
        "pickup_refuse", CLOSED + timedelta(hours=5), bag=bag_no, drv="D042", why="packaging"
    )
    with db.transaction(app) as session:
        bag = session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one()
        bags.apply_event(
            session, bag, lifecycle.RETRY_PICKUP, CLOSED + timedelta(hours=24), "repacked", "api"
        )
    frozen.advance(HOURS_72 + timedelta(hours=1))
    assert auto_close.sweep(app) == []  # 49 h after the retry
    frozen.advance(timedelta(hours=23))
    assert auto_close.sweep(app) == [bag_no]


def test_close_after_hours_is_a_setting(app, world, frozen):
    app.config["CLOSE_AFTER_HOURS"] = 24
    bag_no = closed_bag(world)
    frozen.advance(timedelta(hours=24))
    assert auto_close.sweep(app) == [bag_no]


def test_the_gateway_sweeps_on_its_own_schedule(app, world, frozen):
    bag_no = closed_bag(world)
    frozen.advance(HOURS_72)
    app.config["CLOSE_EVERY_MINUTES"] = 0.002  # 120 ms, so the test need not wait 10 min
    closer = auto_close.AutoClose(app)
    closer.start()
    try:
        deadline = time.monotonic() + 10
        while load_bag(app, bag_no).status != lifecycle.CLOSED:
            assert time.monotonic() < deadline, "the schedule never closed the bag"
            time.sleep(0.05)
    finally:
        closer.stop()
    assert not closer._thread.is_alive()
