"""A driver signs only for the accounts on its route, each with its own key (issue 21):
a config leaked from one account gives nothing that signs another's handover."""

from datetime import timedelta

from sqlalchemy import select
from test_registry import T0, driver_key, handover_fields, picked_up_bag

from devkit.sample_world import SELLER
from gateway import db, settings
from gateway.domain import receipts
from gateway.models import Account, Disagreement, Driver, Handover
from gateway.services import couriers


def hand_over(world, bags, key, hid):
    world.seller.send(
        "handover",
        T0 + timedelta(hours=2),
        hid=hid,
        drv="D042",
        seller=SELLER[0],
        date="2026-08-08",
        bags=bags,
        sig=receipts.sign_handover(handover_fields(bags), key),
    )


def handover(app, hid):
    with db.sessions(app)() as session:
        h = session.scalars(select(Handover).where(Handover.device_handover_id == hid)).one()
        codes = session.scalars(
            select(Disagreement.code).where(Disagreement.record_id == h.record_id)
        ).all()
        return h.signature_ok, h.receipt is not None, codes


def set_route(app, account_ids):
    with db.transaction(app) as session:
        couriers.set_route(session, session.get(Driver, "D042"), account_ids)


def test_a_key_from_another_accounts_config_does_not_sign_here(app, world):
    with db.transaction(app) as session:
        other = Account(name="Yiwu Goods")
        session.add(other)
        session.flush()
        other_id = other.id
    set_route(app, [world.account_id, other_id])  # D042 serves both accounts
    with db.sessions(app)() as session:
        leaked = couriers.route_key(session.get(Driver, "D042"), settings.secret(session), other_id)
    hand_over(world, [picked_up_bag(app, world, 0)], leaked, "h-leaked")
    assert handover(app, "h-leaked") == (False, False, ["BAD_SIGNATURE"])
    # Another bag: a handover refused for its signature still holds the bags it lists.
    hand_over(world, [picked_up_bag(app, world, 1)], driver_key(app), "h-own")
    assert handover(app, "h-own")[:2] == (True, True)


def test_a_driver_taken_off_the_route_no_longer_signs_there(app, world):
    key = driver_key(app)
    set_route(app, [])
    hand_over(world, [picked_up_bag(app, world, 0)], key, "h-off")
    assert handover(app, "h-off") == (False, False, ["BAD_SIGNATURE"])
