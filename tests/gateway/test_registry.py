"""The registry applies every record kind; the gateway re-checks the device and keeps disagreements."""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from devkit.sample_world import DRIVER_PIN, SELLER
from gateway import db, settings
from gateway.domain import lifecycle, receipts
from gateway.ingest import registry
from gateway.models import Bag, Device, Disagreement, Driver, Handover, Weighing
from gateway.services import couriers, handovers

T0 = datetime(2026, 8, 8, 2, 0, tzinfo=UTC)  # 10:00 in Shenzhen


def bag_and_close(hh, bag_no, parcels, grams=4200, at=T0):
    hh.send("bag_open", at, bag=bag_no)
    for i, trk in enumerate(parcels):
        hh.send("parcel", at + timedelta(seconds=i + 1), bag=bag_no, trk=trk)
    hh.send("weigh", at + timedelta(minutes=1), bag=bag_no, g=grams)
    hh.send(
        "bag_close",
        at + timedelta(minutes=2),
        bag=bag_no,
        n=len(parcels),
        g=grams,
        dims=[60, 40, 30],
    )


def load_bag(app, bag_no) -> Bag:
    """The bag with its parcels and history loaded, its session closed."""
    with db.sessions(app)() as session:
        bag = session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one()
        bag.parcels, bag.held_out_parcels, bag.history, bag.disagreements  # noqa: B018 - load
        return bag


def codes(app, bag_no) -> list[str]:
    with db.sessions(app)() as session:
        bag = session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one()
        return [d.code for d in bag.disagreements]


def driver_key(app) -> bytes:
    """The key the seller's handheld unwraps with the PIN: D042's for the world's account."""
    with db.sessions(app)() as session:
        driver = session.get(Driver, "D042")
        assert couriers.unwrap_with_pin(driver, DRIVER_PIN) is not None
        assert couriers.route(session, driver)  # the world's account is on its route
        account_id = session.get(Device, "hh-seller").account_id
        return couriers.route_key(driver, settings.secret(session), account_id)


def test_a_closed_bag_awaits_pickup_with_its_history(app, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:3])
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.AWAITING_PICKUP
    assert [h.to_status for h in bag.history] == [
        "submitted",
        "awaiting_bag_number",
        "awaiting_pickup",
    ]
    assert bag.parcel_count == 3 and bag.weight_g == 4200 and bag.seller_id == SELLER[0]
    assert bag.service == "milkrun" and bag.account_id == world.account_id
    # Closed 10:02 in Shenzhen, Milkrun: due by 19:00 the same day (domain.deadlines).
    assert bag.pickup_due_at == datetime(2026, 8, 8, 11, 0, tzinfo=UTC)
    assert codes(app, bag_no) == []


def test_a_parcel_the_gateway_refuses_is_held_out_with_its_reason(app, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, [world.parcels[0], "LZPENDING01", "LZOTHER0001"])
    bag = load_bag(app, bag_no)
    # The device put all three in; the gateway holds out the two it refuses (the manual: the
    # seller takes them out, they are not in the bag's parcel list), each with its reason.
    assert [p.tracking_no for p in bag.parcels] == [world.parcels[0]]
    assert [(p.tracking_no, p.held_out) for p in bag.held_out_parcels] == [
        ("LZPENDING01", "NOT_RTS"),
        ("LZOTHER0001", "STORE_NOT_LINKED"),
    ]
    assert bag.parcel_count == 1 and bag.held_out_count == 2
    assert bag.status == lifecycle.AWAITING_PICKUP  # the device counted 3: held out, not lost
    assert codes(app, bag_no) == ["NOT_RTS", "STORE_NOT_LINKED"]


def test_a_parcel_scanned_twice_is_a_duplicate_not_a_second_member(app, world):
    bag_no = world.seller.bag(0)
    hh = world.seller
    hh.send("bag_open", T0, bag=bag_no)
    hh.send("parcel", T0, bag=bag_no, trk=world.parcels[0])
    hh.send("parcel", T0, bag=bag_no, trk=world.parcels[0])
    hh.send("parcel_remove", T0, bag=bag_no, trk="LZNOTHERE01")
    assert load_bag(app, bag_no).parcel_count == 1
    assert codes(app, bag_no) == ["DUPLICATE", "NOT_IN_BAG"]


def test_parcel_in_another_bag_and_limits_at_close(app, world):
    first, second = world.seller.bag(0), world.seller.bag(1)
    bag_and_close(world.seller, first, world.parcels[:1])
    world.seller.send("bag_open", T0, bag=second)
    world.seller.send("parcel", T0, bag=second, trk=world.parcels[0])
    world.seller.send("bag_close", T0, bag=second, n=5, g=50001, dims=[120, 40, 30])
    assert codes(app, second) == ["IN_OTHER_BAG", "PARCEL_COUNT", "OVERWEIGHT", "OVERSIZE"]
    assert load_bag(app, second).status == lifecycle.AWAITING_PICKUP


def test_records_that_cannot_apply_never_raise(app, world):
    hh = world.seller
    hh.send("pickup", T0, bag="BS9999999999", drv="D042")
    world.hub.send("arrive", T0, bag="BS9999999999", g=100, ok=1)
    hh.send("signin", T0, drv="NOBODY")
    hh.send(
        "handover",
        T0,
        hid="h1",
        drv="D042",
        seller=SELLER[0],
        date="2026-13-01",
        bags=["x"],
        sig="00",
    )
    with db.sessions(app)() as session:
        found = [d.code for d in session.scalars(select(Disagreement).order_by(Disagreement.id))]
    assert found == ["UNKNOWN_BAG", "UNKNOWN_BAG", "UNKNOWN_DRIVER", "BAD_HANDOVER"]


def test_bag_number_outside_the_device_range_is_flagged(app, world):
    world.seller.send("bag_open", T0, bag="BS0000999999")
    assert codes(app, "BS0000999999") == ["BAG_NOT_IN_RANGE"]


def test_pickup_time_is_the_device_time_of_the_scan(app, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:2])
    scan = datetime(2026, 8, 8, 3, 0, 17, tzinfo=UTC)
    world.seller.send("signin", scan, drv="D042")
    world.seller.send("pickup", scan, bag=bag_no, drv="D042")
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.PICKED_UP and bag.picked_up_at == scan
    assert bag.driver_id == "D042"
    # A second scan is kept as a disagreement, never moves the bag.
    world.seller.send("pickup", scan + timedelta(hours=1), bag=bag_no, drv="D042")
    bag = load_bag(app, bag_no)
    assert bag.picked_up_at == scan and codes(app, bag_no) == ["ILLEGAL_TRANSITION"]


def test_refused_pickup_keeps_the_reason(app, world):
    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:1])
    world.seller.send("pickup_refuse", T0, bag=bag_no, drv="D042", why="over_limit")
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.PICKUP_FAILED and bag.pickup_refused_reason == "over_limit"


def picked_up_bag(app, world, n=0, grams=10000):
    bag_no = world.seller.bag(n)
    bag_and_close(world.seller, bag_no, world.parcels[n : n + 1], grams)
    world.seller.send("pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")
    return bag_no


def test_arrival_within_tolerance_is_received(app, world):
    bag_no = picked_up_bag(app, world)
    world.hub.send("arrive", T0 + timedelta(days=1), bag=bag_no, g=10150, ok=1)
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.RECEIVED and bag.arrival_difference_g == 150
    assert [h.to_status for h in bag.history][-2:] == ["arrived", "received"]


def test_arrival_outside_tolerance_is_an_exception_with_the_difference(app, world):
    bag_no = picked_up_bag(app, world)
    # 10 kg: allowance max(200 g, 2 %) = 200 g; 9 700 g is 300 g light.
    world.hub.send("arrive", T0 + timedelta(days=1), bag=bag_no, g=9700, ok=1)
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.RECEIVED_EXCEPTION and bag.arrival_difference_g == -300
    assert codes(app, bag_no) == ["ARRIVAL_VERDICT"]  # the device said ok
    with db.sessions(app)() as session:
        w = session.scalars(select(Weighing).where(Weighing.kind == "arrival")).one()
        assert (w.grams, w.difference_g, w.allowance_g) == (9700, -300, 200.0)


def handover_fields(bags: list[str]) -> receipts.HandoverFields:
    return receipts.HandoverFields(
        date(2026, 8, 8), SELLER[0], SELLER[1], tuple(bags), "D042", "王师傅"
    )


def signed_handover(app, world):
    bags = [picked_up_bag(app, world, n) for n in range(2)]
    sig = receipts.sign_handover(handover_fields(bags), driver_key(app))
    world.seller.send(
        "handover",
        T0 + timedelta(hours=2),
        hid="h-1",
        drv="D042",
        seller=SELLER[0],
        date="2026-08-08",
        bags=bags,
        sig=sig,
    )
    return bags


def test_handover_signed_by_the_driver_gives_a_receipt(app, world):
    bags = signed_handover(app, world)
    with db.sessions(app)() as session:
        h = session.scalars(select(Handover)).one()
        assert h.signature_ok and h.bag_count == 2
        fields = handover_fields(bags)
        sig = receipts.sign_handover(fields, driver_key(app))
        assert h.receipt.id == receipts.Receipt(fields, sig).receipt_id
    assert load_bag(app, bags[0]).handover_id == h.id


def test_handover_signed_with_the_seller_id_for_a_name_verifies_too(app, world):
    """The device config lists stores by id only: the handheld may sign the id as the name."""
    bags = [picked_up_bag(app, world)]
    fields = receipts.HandoverFields(
        date(2026, 8, 8), SELLER[0], SELLER[0], tuple(bags), "D042", "王师傅"
    )
    sig = receipts.sign_handover(fields, driver_key(app))
    world.seller.send(
        "handover",
        T0,
        hid="h-2",
        drv="D042",
        seller=SELLER[0],
        date="2026-08-08",
        bags=bags,
        sig=sig,
    )
    with db.sessions(app)() as session:
        assert session.scalars(select(Handover)).one().signature_ok


def test_handover_with_a_wrong_signature_has_no_receipt(app, world):
    bags = [picked_up_bag(app, world)]
    world.seller.send(
        "handover",
        T0,
        hid="h-3",
        drv="D042",
        seller=SELLER[0],
        date="2026-08-08",
        bags=bags,
        sig="ab" * 32,
    )
    with db.sessions(app)() as session:
        h = session.scalars(select(Handover)).one()
        assert not h.signature_ok and h.receipt is None
        assert [d.code for d in session.scalars(select(Disagreement))] == ["BAD_SIGNATURE"]


def test_unknown_parcels_are_flagged_only_when_the_setting_refuses(app, world):
    app.config["UNKNOWN_PARCEL"] = "refuse"
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", T0, bag=bag_no)
    world.seller.send("parcel", T0, bag=bag_no, trk="LZNEVERSEEN")
    assert codes(app, bag_no) == [registry.UNKNOWN_PARCEL]
    app.config["UNKNOWN_PARCEL"] = "accept"
    world.seller.send("parcel", T0, bag=bag_no, trk="LZNEVERSEEN2")
    assert codes(app, bag_no) == [registry.UNKNOWN_PARCEL]


def test_a_bag_scanned_then_refused_at_the_door_fails_pickup(app, api, world):
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", T0, bag=bag_no)
    world.seller.send("parcel", T0, bag=bag_no, trk="LZ000000001CN")
    world.seller.send("bag_close", T0, bag=bag_no, n=1, g=1500, dims=[40, 30, 20])
    world.seller.send("pickup", T0, bag=bag_no, drv="D042")
    world.seller.send("pickup_refuse", T0, bag=bag_no, drv="D042", why="packaging")
    _, bag = api.get(f"/api/bags/{bag_no}")
    assert bag["status"] == "pickup_failed"
    assert bag["picked_up_at"] is None
    assert bag["disagreements"] == []


def test_another_driver_cannot_refuse_a_bag_already_picked_up(app, api, world):
    bag_no = world.seller.bag(0)
    world.seller.send("bag_open", T0, bag=bag_no)
    world.seller.send("parcel", T0, bag=bag_no, trk="LZ000000001CN")
    world.seller.send("bag_close", T0, bag=bag_no, n=1, g=1500, dims=[40, 30, 20])
    world.seller.send("pickup", T0, bag=bag_no, drv="D042")
    world.seller.send("pickup_refuse", T0, bag=bag_no, drv="D999", why="packaging")
    _, bag = api.get(f"/api/bags/{bag_no}")
    assert bag["status"] == "picked_up"
    assert bag["disagreements"]


# --- device roles (issue 21) ----------------------------------------------------------------


def refusals(app, device_id) -> tuple[list[str], dict]:
    with db.sessions(app)() as session:
        codes = session.scalars(
            select(Disagreement.code).where(Disagreement.device_id == device_id)
        ).all()
        return list(codes), session.get(Device, device_id).status or {}


def test_a_hub_handheld_cannot_open_or_fill_bags(app, world):
    bag_no = world.hub.bag(0)
    world.hub.send("bag_open", T0, bag=bag_no)
    world.hub.send("parcel", T0, bag=bag_no, trk=world.parcels[0])
    with db.sessions(app)() as session:
        assert session.scalars(select(Bag)).all() == []
    codes, status = refusals(app, "hh-hub")
    assert codes == [registry.DEVICE_ROLE, registry.DEVICE_ROLE]
    assert status["refused_count"] == 2
    assert status["last_refused"] == {"seq": 2, "kind": "parcel", "code": "DEVICE_ROLE"}


def test_a_seller_handheld_cannot_record_a_hub_arrival(app, world):
    bag_no = picked_up_bag(app, world)
    world.seller.send("arrive", T0 + timedelta(days=1), bag=bag_no, g=10000, ok=1)
    bag = load_bag(app, bag_no)
    assert bag.status == lifecycle.PICKED_UP and bag.arrived_at is None
    assert refusals(app, "hh-seller")[0] == [registry.DEVICE_ROLE]
    # The hub's own handheld still can, and is not held up by the refused record.
    world.hub.send("arrive", T0 + timedelta(days=1), bag=bag_no, g=10000, ok=1)
    assert load_bag(app, bag_no).status == lifecycle.RECEIVED


# --- handovers: only the seller's own known bags, ready for pickup (issue 21) ---------------


def other_sellers_picked_up_bag(app, api, handheld) -> str:
    """A bag of seller 2000456 (another account), scanned by the same driver."""
    status, account = api.post("/api/accounts", {"name": "Yiwu Trading"})
    assert status == 201, account
    link = {"seller_id": "2000456", "seller_name": "义乌小店"}
    assert api.post(f"/api/accounts/{account['id']}/stores", link)[0] == 200
    other = handheld("hh-other", account_id=account["id"], role="seller")
    bag_no = other.bag(0)
    bag_and_close(other, bag_no, ["LZOTHER0001"])
    other.send("pickup", T0 + timedelta(hours=1), bag=bag_no, drv="D042")
    return bag_no


def send_handover(app, world, bags, date_text="2026-08-08", hid="h-9"):
    fields = receipts.HandoverFields(
        date.fromisoformat(date_text), SELLER[0], SELLER[1], tuple(bags), "D042", "王师傅"
    )
    sig = receipts.sign_handover(fields, driver_key(app))
    world.seller.send(
        "handover",
        T0 + timedelta(hours=2),
        hid=hid,
        drv="D042",
        seller=SELLER[0],
        date=date_text,
        bags=list(bags),
        sig=sig,
    )


def test_a_handover_takes_only_the_sellers_own_ready_bags(app, api, handheld, world):
    theirs = other_sellers_picked_up_bag(app, api, handheld)
    ours = picked_up_bag(app, world)
    open_bag = world.seller.bag(5)
    world.seller.send("bag_open", T0, bag=open_bag)
    send_handover(app, world, [ours, "BS0000999999", theirs, open_bag])
    with db.sessions(app)() as session:
        handover = session.scalars(select(Handover)).one()
        receipt = handover.receipt
        assert receipt.bag_numbers == [ours, "BS0000999999", theirs, open_bag]  # as signed
        assert [(r["bag"], r["code"]) for r in receipt.refused_bags] == [
            ("BS0000999999", registry.UNKNOWN_BAG),
            (theirs, registry.HANDOVER_BAG),
            (open_bag, registry.HANDOVER_BAG),
        ]
        pdf_receipt = handovers.receipt_of(receipt)
        assert pdf_receipt.refused[1] == (theirs, f"bag {theirs} is not of seller {SELLER[0]}")
        assert receipts.receipt_pdf(pdf_receipt, b"s", "https://gw.test").startswith(b"%PDF")
        assert load_bag(app, ours).handover_id == handover.id
    # The other seller's bag is untouched: not re-assigned, still waiting for its own receipt.
    other = load_bag(app, theirs)
    assert other.handover_id is None and other.status == lifecycle.PICKED_UP
    assert load_bag(app, open_bag).handover_id is None


def test_a_handover_of_no_bag_of_the_seller_has_no_receipt(app, api, handheld, world):
    theirs = other_sellers_picked_up_bag(app, api, handheld)
    send_handover(app, world, [theirs])
    with db.sessions(app)() as session:
        assert session.scalars(select(Handover)).one().receipt is None
    assert load_bag(app, theirs).handover_id is None


def test_a_handover_dated_far_from_its_record_has_no_receipt(app, world):
    bags = [picked_up_bag(app, world)]
    send_handover(app, world, bags, date_text="2099-08-08")
    with db.sessions(app)() as session:
        assert session.scalars(select(Handover)).one().receipt is None
        found = session.scalars(select(Disagreement.code)).all()
    assert registry.HANDOVER_DATE in found
