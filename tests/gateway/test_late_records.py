"""Late records (issue 15): what happened earlier but reached the gateway later still counts."""

import re
from datetime import timedelta

from sqlalchemy import select
from test_registry import T0, bag_and_close, codes, load_bag

from gateway import db
from gateway.domain import lifecycle, online_time
from gateway.ingest.ledger import Ledger
from gateway.models import Bag, Disagreement, Parcel, Revision, Weighing
from gateway.services import bags, parcels
from gateway.web.auth import ensure_user


def receive(app, trk, at):
    with db.transaction(app) as session:
        parcels.receive(session, [trk], at)


def parcel(app, trk) -> Parcel:
    with db.sessions(app)() as session:
        return session.get(Parcel, trk)


def test_a_pickup_reaching_the_gateway_after_the_hub_receipt_backdates_online_time(
    app, world, handheld
):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    bag_no, trk = world.seller.bag(0), world.parcels[0]
    bag_and_close(world.seller, bag_no, [trk])
    scanned, received = T0 + timedelta(hours=1), T0 + timedelta(days=1)
    receive(app, trk, received)
    assert parcel(app, trk).online_reason == online_time.BAG_NOT_SCANNED
    courier.send("pickup", scanned, bag=bag_no, drv="D042")
    found = parcel(app, trk)
    assert (found.online_at, found.online_reason) == (scanned, online_time.PICKUP_SCAN)
    assert load_bag(app, bag_no).status == lifecycle.PICKED_UP
    with db.sessions(app)() as session:
        notes = [r.change for r in session.scalars(select(Revision).order_by(Revision.id))]
    assert any("online time" in n and "PICKUP_SCAN" in n for n in notes), notes


def test_an_arrival_before_its_pickup_keeps_its_weight_and_applies_when_the_pickup_comes(
    app, world, handheld
):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1], grams=4200)
    world.hub.send("arrive", T0 + timedelta(hours=5), bag=bag_no, g=4250, ok=1)
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.AWAITING_PICKUP and bag.arrival_weight_g == 4250
    assert codes(app, bag_no) == ["ARRIVAL_BEFORE_PICKUP"]
    courier.send("pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.RECEIVED
    assert (bag.arrival_weight_g, bag.arrival_difference_g) == (4250, 50)
    assert [h.to_status for h in bag.history][-3:] == ["picked_up", "arrived", "received"]
    assert codes(app, bag_no) == []  # the early arrival's disagreement was a matter of order
    with db.sessions(app)() as session:
        kinds = [w.kind for w in session.scalars(select(Weighing).where(Weighing.bag_id == bag.id))]
    assert kinds == ["bagging", "arrival"]


def test_a_parcel_bagged_on_two_handhelds_is_a_member_of_the_first_and_a_conflict_on_both(
    app, world, api, handheld
):
    other = handheld(
        "hh-seller2", account_id=world.account_id, pickup_address_id=world.pickup_address_id
    )
    first, second, trk = world.seller.bag(0), other.bag(0), world.parcels[0]
    # The second handheld syncs first, though its scan came later.
    bag_and_close(other, second, [trk, world.parcels[1]], at=T0 + timedelta(minutes=10))
    bag_and_close(world.seller, first, [trk])
    assert [p.tracking_no for p in load_bag(app, first).parcels] == [trk]
    late = load_bag(app, second)
    assert [p.tracking_no for p in late.parcels] == [world.parcels[1]]
    assert [(p.tracking_no, p.held_out) for p in late.held_out_parcels] == [(trk, "IN_OTHER_BAG")]
    for bag_no in (first, second):
        status, body = api.get(f"/api/bags/{bag_no}")
        assert status == 200 and body["conflicts"] == [trk] and body["clean"] is False
    status, body = api.get(f"/api/parcels/{trk}")
    assert body["bag_no"] == first and body["conflict"] is True
    assert body["bags"] == [
        {"bag_no": first, "held_out": None},
        {"bag_no": second, "held_out": "IN_OTHER_BAG"},
    ]


def test_a_record_of_a_bag_not_yet_known_is_kept_and_applied_when_the_bag_arrives(
    app, world, handheld
):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    bag_no = world.seller.bag(0)
    courier.send("pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")
    with db.sessions(app)() as session:
        assert session.scalars(select(Bag).where(Bag.bag_no == bag_no)).first() is None
    assert _unknown(app, bag_no) == ["UNKNOWN_BAG"]
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.PICKED_UP and bag.picked_up_at == T0 + timedelta(hours=1)
    assert _unknown(app, bag_no) == []


def test_a_bag_opened_in_the_transaction_that_kept_a_record_of_it_applies_that_record(
    app, world, handheld
):
    """The ledger applies many devices' records in one transaction and one registry Batch,
    devices in id order: the courier's pickup of a bag not yet known is kept, then the
    seller's records open the bag, which replays the pickup."""
    handheld("hh-courier", account_id=world.account_id, role="seller")
    bag_no = world.seller.bag(0)

    def body(seq, kind, at, **fields):
        return {"s": seq, "b": 1, "t": seq, "w": int(at.timestamp()), "q": 1, "k": kind, **fields}

    trk = world.parcels[0]
    records = {
        "hh-courier": [body(1, "pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")],
        world.seller.id: [
            body(1, "bag_open", T0, bag=bag_no),
            body(2, "parcel", T0 + timedelta(seconds=1), bag=bag_no, trk=trk),
            body(
                3, "bag_close", T0 + timedelta(minutes=2), bag=bag_no, n=1, g=900, dims=[60, 40, 30]
            ),
        ],
    }
    with db.transaction(app) as session:
        Ledger().store(session, records, {}, T0 + timedelta(hours=2))
        assert Ledger().apply(session, records) == 4
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.PICKED_UP and bag.picked_up_at == T0 + timedelta(hours=1)
    assert _unknown(app, bag_no) == []


def _unknown(app, bag_no):
    with db.sessions(app)() as session:
        return list(
            session.scalars(
                select(Disagreement.code).where(
                    Disagreement.bag_no == bag_no, Disagreement.bag_id.is_(None)
                )
            )
        )


def test_a_held_out_parcel_shows_on_the_bag_and_the_bag_is_not_clean(app, world, api):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, [world.parcels[0], "LZOTHER0001"])
    status, body = api.get(f"/api/bags/{bag_no}")
    assert status == 200
    assert body["parcels"] == [world.parcels[0]]
    assert body["held_out"] == [{"tracking_no": "LZOTHER0001", "code": "STORE_NOT_LINKED"}]
    assert body["held_out_count"] == 1 and body["clean"] is False


def test_a_parcel_taken_out_of_a_later_bag_still_conflicts_with_an_earlier_scan_synced_late(
    app, world, handheld
):
    other = handheld(
        "hh-seller2", account_id=world.account_id, pickup_address_id=world.pickup_address_id
    )
    first, second, trk = world.seller.bag(0), other.bag(0), world.parcels[0]
    # The second handheld scanned the parcel after the first had and took it out again; it
    # syncs first. In time order the scan was refused (held out) and the removal took out a
    # held-out parcel: the conflict stays on both bags.
    later = T0 + timedelta(minutes=10)
    other.send("bag_open", later, bag=second)
    other.send("parcel", later + timedelta(seconds=1), bag=second, trk=trk)
    other.send("parcel_remove", later + timedelta(seconds=2), bag=second, trk=trk)
    bag_and_close(world.seller, first, [trk])
    assert [p.tracking_no for p in load_bag(app, first).parcels] == [trk]
    assert codes(app, first) == ["IN_OTHER_BAG"] and codes(app, second) == ["IN_OTHER_BAG"]
    bag = load_bag(app, second)
    assert bag.parcels == [] and bag.held_out_parcels == []


def test_a_hub_receipt_at_the_time_of_a_scan_counts_after_it_whichever_comes_first(app, world):
    # At one time the gateway takes a device's record before a hub receipt (registry
    # receipt_tie): the scan of a parcel not yet received is accepted, arrival order aside.
    bag_no, trk = world.seller.bag(0), world.parcels[0]
    world.seller.send("bag_open", T0, bag=bag_no)
    scanned = T0 + timedelta(seconds=1)
    receive(app, trk, scanned)
    world.seller.send("parcel", scanned, bag=bag_no, trk=trk)
    bag = load_bag(app, bag_no)
    assert [p.tracking_no for p in bag.parcels] == [trk] and bag.held_out_parcels == []


def test_the_bag_history_says_when_a_late_record_revised_it(app, world, api, handheld):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    bag_no, trk = world.seller.bag(0), world.parcels[0]
    bag_and_close(world.seller, bag_no, [trk])
    receive(app, trk, T0 + timedelta(days=1))
    courier.send("pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")
    status, body = api.get(f"/api/bags/{bag_no}")
    assert status == 200
    revisions = [h for h in body["history"] if h["kind"] == "revision"]
    cause = f"late pickup record hh-courier#1 of {T0 + timedelta(hours=1):%Y-%m-%d %H:%M:%S}"
    assert [(r["cause"], r["actor"], r["from"], r["to"]) for r in revisions] == [
        (cause, "replay", None, None)
    ] * 2
    changes = [r["change"] for r in revisions]
    assert "status awaiting_pickup -> picked_up" in changes[0]
    assert changes[1].startswith(f"online time of {trk} ") and changes[1].endswith("(PICKUP_SCAN)")
    statuses = [h["to"] for h in body["history"] if h["kind"] == "status"]
    assert statuses[-1] == lifecycle.PICKED_UP
    # The admin bag page shows them in its status history too.
    with db.transaction(app) as session:
        ensure_user(session, "viewer", "viewer-pass-1", "viewer")
    client = app.test_client()
    page = client.get("/login", base_url="https://localhost").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    login = {"username": "viewer", "password": "viewer-pass-1", "csrf_token": token}
    assert client.post("/login", data=login, base_url="https://localhost").status_code == 302
    page = client.get(f"/bags/{bag_no}", base_url="https://localhost").text
    history = page[page.index('id="history"') :]
    assert history.count('class="revision"') == 2
    assert "Revised: status awaiting_pickup -&gt; picked_up" in history


def test_a_cancel_refused_after_a_late_pickup_applies_when_the_refusal_of_that_pickup_comes(
    app, world, handheld
):
    courier = handheld("hh-courier", account_id=world.account_id, role="seller")
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    with db.transaction(app) as session:
        bag = session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one()
        bags.cancel(session, bag, T0 + timedelta(hours=1), "api", "seller asked")
    # The courier scanned the bag before the cancel: the cancel no longer applies...
    courier.send("pickup", T0 + timedelta(minutes=30), bag=bag_no, drv="D042")
    assert load_bag(app, bag_no).status == lifecycle.PICKED_UP
    # ...until the driver's refusal, also before the cancel, arrives: then it does again.
    courier.send(
        "pickup_refuse", T0 + timedelta(minutes=45), bag=bag_no, drv="D042", why="no_goods"
    )
    bag = load_bag(app, bag_no)
    assert [h.to_status for h in bag.history][-4:] == [
        lifecycle.PICKED_UP,
        lifecycle.PICKUP_FAILED,
        lifecycle.CANCELLING,
        lifecycle.CANCELLED,
    ]
    with db.sessions(app)() as session:
        notes = [r.change for r in session.scalars(select(Revision).order_by(Revision.id))]
    assert "cancel by api applies again" in notes
