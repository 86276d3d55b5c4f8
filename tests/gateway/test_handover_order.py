"""Handovers and cancels end as in time order whatever order the records arrive in (issue 15).

A handover is decided as a whole at its own time: which listed bags go with it and whether
its receipt is issued. A cancel is decided at its own time too: refused when asked, it is kept
and applies if a record that arrives later shows the bag was not picked up then
(docs/bag-lifecycle.md).
"""

from datetime import timedelta

from sqlalchemy import select
from test_registry import T0, bag_and_close, driver_key, load_bag

from devkit.sample_world import SELLER
from gateway import clock, db
from gateway.domain import lifecycle, receipts
from gateway.ingest import registry
from gateway.models import Disagreement, Handover, Revision

HANDED = T0 + timedelta(hours=2)


def handover(device, bags, hid="h-1", sig=None, at=HANDED):
    fields = receipts.HandoverFields(
        HANDED.date(), SELLER[0], SELLER[1], tuple(bags), "D042", "王师傅"
    )
    device.send(
        "handover",
        at,
        hid=hid,
        drv="D042",
        seller=SELLER[0],
        date=HANDED.date().isoformat(),
        bags=list(bags),
        sig=sig or receipts.sign_handover(fields, driver_key(device.app)),
    )


def handovers(app) -> dict[str, tuple]:
    """hid -> (receipt issued, refused bags on it, disagreement codes of its record)."""
    with db.sessions(app)() as session:
        found = {}
        for h in session.scalars(select(Handover)):
            codes = session.scalars(
                select(Disagreement.code)
                .where(Disagreement.record_id == h.record_id)
                .order_by(Disagreement.id)
            ).all()
            refused = [r["bag"] for r in h.receipt.refused_bags] if h.receipt else None
            found[h.device_handover_id] = (h.receipt is not None, refused, codes)
        return found


def revisions(app) -> list[str]:
    with db.sessions(app)() as session:
        return list(session.scalars(select(Revision.change).order_by(Revision.id)))


def test_a_handover_with_a_bad_signature_changes_nothing(app, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    world.seller.send("pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")
    handover(world.seller, [bag_no], hid="h-forged", sig="ab" * 32)
    bag = load_bag(app, bag_no)
    assert bag.handover_id is None and bag.status == lifecycle.PICKED_UP
    assert handovers(app) == {"h-forged": (False, None, [registry.BAD_SIGNATURE])}
    # The bag is still free for the handover the driver really signed.
    handover(world.seller, [bag_no], hid="h-real", at=HANDED + timedelta(minutes=1))
    assert handovers(app)["h-real"] == (True, [], [])
    with db.sessions(app)() as session:
        real = session.scalars(select(Handover).where(Handover.device_handover_id == "h-real"))
        assert load_bag(app, bag_no).handover_id == real.one().id


def test_a_handover_synced_before_the_sellers_records_gets_its_receipt_when_they_come(
    app, world, handheld
):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    bag_no = world.seller.bag(0)
    courier.send("pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")
    handover(courier, [bag_no])
    # Then: the bag is unknown, so nothing can go with the handover.
    assert handovers(app) == {"h-1": (False, None, [registry.UNKNOWN_BAG, registry.BAD_HANDOVER])}
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    # In time order the bag was ready at the handover: it goes with it, and the receipt is
    # issued; the disagreements of the order of arrival are gone.
    assert handovers(app) == {"h-1": (True, [], [])}
    bag = load_bag(app, bag_no)
    assert bag.handover_id is not None and bag.status == lifecycle.PICKED_UP
    notes = revisions(app)
    assert any(n.startswith("handover h-1: receipt ") and n.endswith(" issued") for n in notes)


def test_a_receipt_is_withdrawn_when_a_late_record_shows_no_bag_was_ready(app, world, handheld):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    other = handheld("hh-courier2", account_id=world.account_id, role="seller")
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    handover(courier, [bag_no])
    assert handovers(app)["h-1"][0] is True
    # The driver had refused the bag on another handheld an hour before ("no goods"), which
    # syncs only now: at the handover the bag had failed pickup, so nothing was handed over.
    other.send("pickup_refuse", HANDED - timedelta(hours=1), bag=bag_no, drv="D042", why="no_goods")
    assert handovers(app) == {"h-1": (False, None, [registry.HANDOVER_BAG, registry.BAD_HANDOVER])}
    bag = load_bag(app, bag_no)
    assert bag.handover_id is None and bag.status == lifecycle.PICKUP_FAILED
    assert any(n.startswith("handover h-1: receipt ") and "withdrawn" in n for n in revisions(app))


def test_a_bag_in_two_handovers_goes_with_the_earlier_whichever_arrives_first(app, world, handheld):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    first, second = world.seller.bag(0), world.seller.bag(1)
    bag_and_close(world.seller, first, world.parcels[:1])
    bag_and_close(world.seller, second, world.parcels[1:2])
    for bag_no in (first, second):
        world.seller.send("pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")
    # The later handover (both bags) reaches the gateway before the earlier one (one bag).
    handover(world.seller, [first, second], hid="h-late", at=HANDED + timedelta(minutes=5))
    handover(courier, [first], hid="h-early")
    found = handovers(app)
    assert found["h-early"] == (True, [], [])
    assert found["h-late"] == (True, [first], [registry.HANDOVER_BAG])


def test_a_cancel_refused_after_a_pickup_applies_when_the_late_refusal_of_that_pickup_comes(
    app, api, world, handheld
):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    other = handheld("hh-courier2", account_id=world.account_id, role="seller")
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    courier.send("pickup", T0 + timedelta(minutes=30), bag=bag_no, drv="D042")
    clock.freeze(T0 + timedelta(hours=1))
    status, body = api.post(f"/api/bags/{bag_no}/cancel", {"reason": "order cancelled"})
    assert status == 409 and body["error"]["code"] == lifecycle.CANCEL_AFTER_PICKUP
    assert "the request is kept" in body["error"]["message"]
    assert load_bag(app, bag_no).status == lifecycle.PICKED_UP
    # The driver's refusal of that pickup, before the cancel, syncs from another handheld.
    other.send("pickup_refuse", T0 + timedelta(minutes=45), bag=bag_no, drv="D042", why="no_goods")
    bag = load_bag(app, bag_no)
    assert [h.to_status for h in bag.history][-3:] == [
        lifecycle.PICKUP_FAILED,
        lifecycle.CANCELLING,
        lifecycle.CANCELLED,
    ]
    assert "cancel by api applies again" in revisions(app)


def test_a_cancel_older_than_what_the_bag_has_seen_is_decided_at_its_time(app, api, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    world.seller.send("pickup", T0 + timedelta(hours=2), bag=bag_no, drv="D042")
    # The gateway's clock is behind the handheld's: the cancel is older than the pickup scan
    # the gateway has. At its time the bag was waiting for its driver: it applies, and the
    # pickup scan after it finds the bag cancelled. The revision names the status change, not
    # the cancel itself (it is the answer to this request, not something learnt late).
    clock.freeze(T0 + timedelta(hours=1))
    status, body = api.post(f"/api/bags/{bag_no}/cancel")
    assert status == 200 and body["status"] == lifecycle.CANCELLED
    assert revisions(app) == [
        "status picked_up -> cancelled; pickup scan "
        f"{T0 + timedelta(hours=2):%Y-%m-%d %H:%M:%S} -> none"
    ]
