"""What the admin tests share besides fixtures (a module of its own: `conftest` is ambiguous
when several test folders have one)."""

import hashlib
import re
from datetime import UTC, date, datetime

from gateway.domain import receipts
from gateway.models import Bag, Handover, Receipt

ADMIN_PASSWORD = "admin-pass-1"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page_text: str) -> str:
    return CSRF_RE.search(page_text).group(1)


def log_in(client, username="admin", password=ADMIN_PASSWORD):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def now() -> datetime:
    return datetime.now(UTC)


def add_handover(session, bag_no: str) -> int:
    """A signed handover of one bag and its receipt, as the registry stores them after a
    pickup; returns the handover's id. The caller commits."""
    fields = receipts.HandoverFields(
        pickup_date=date.today(), seller_id="S-1001", seller_name='Shop <b>"&',
        bag_numbers=(bag_no,), driver_id="drv-7", driver_name="王师傅",
    )  # fmt: skip
    sig = hashlib.sha256(b"not a real key").hexdigest()
    receipt = receipts.Receipt(fields, sig)
    bag = session.query(Bag).filter_by(bag_no=bag_no).one()
    h = Handover(
        device_id=bag.device_id, device_handover_id="h1", driver_id="drv-7",
        seller_id="S-1001", pickup_date=fields.pickup_date, bag_numbers=[bag_no],
        bag_count=1, signature=sig, signature_ok=True, at=now(),
    )  # fmt: skip
    session.add(h)
    session.flush()
    session.add(
        Receipt(
            id=receipt.receipt_id, handover_id=h.id, pickup_date=fields.pickup_date,
            seller_id=fields.seller_id, seller_name=fields.seller_name,
            bag_numbers=[bag_no], driver_id="drv-7", driver_name="王师傅",
            driver_signature=sig,
        )
    )  # fmt: skip
    bag.handover_id = h.id
    return h.id
