"""The manual's examples at their own dates, end to end (issue 15, item 5 "One clock").

A real bagscan-gateway process (as tools/demo runs it: embedded broker, its own database)
and simulated handhelds on the real MicroPython firmware. The gateway's clock is set with
BAGSCAN_CLOCK_OFFSET and moved on by restarting it on the same database (docs/deploy.md,
"The clock"); the handhelds take the gateway's time from their config message, and the
control line `wall <epoch seconds>` sets a handheld's clock to the minute of an example
(docs/simulator.md). All times are China time (docs/domain.md, "Time zone"), in 2026:
Aug 8 2026 is a Saturday, Aug 9 a Sunday, Aug 12 a Wednesday.

- Online time (docs/domain.md, "Online time"; the manual's "Milkrun案例说明" and
  "付费揽收案例说明"): bags scanned by the driver on Aug 8 at 11:00, their parcels received
  at the hub on Aug 9 08:00 (Milkrun) and Aug 10 08:00 (paid pickup): each parcel is online
  at Aug 8 11:00, reason PICKUP_SCAN.
- Cut-offs (docs/domain.md, "Paid pickup"): a bag closed at 15:59 is due by 20:00 the same
  day, one closed at 16:01 by 20:00 the next day, on a weekday and on a Sunday alike (the
  service runs Mon-Sun; gateway/domain/deadlines.py has no day of the week in it).
- Auto-close (docs/domain.md, "Bag statuses"; CLOSE_AFTER_HOURS = 72): a bag awaiting pickup
  for 72 h is closed by the gateway's own schedule, counted from awaiting_pickup, not from
  its opening; a bag still open on its handheld is left alone and may still be closed there.

The handhelds' time: a handheld takes no time from a retained config (a broker may have kept
it for hours); the gateway's config feed tells each online handheld whose status says its
clock is unset or more than 120 s off the gateway's time (gateway/ingest/config_feed.py),
also after a restart with a new BAGSCAN_CLOCK_OFFSET. A `wall` line within 120 s of the
gateway's clock stays, as a person set it; the auto-close test still sets the handheld with
`wall` after the 72 h jump, where the feed would correct it a moment later.
"""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devkit import provision
from devkit.control import Handheld
from devkit.gateway_process import Gateway
from devkit.handheld import SimHandheld

CHINA = ZoneInfo("Asia/Shanghai")
DRIVER = {"name": "王师傅", "pin": "4808"}
# The sample sellers' pickup addresses, in the manual's coverage (docs/domain.md).
MILKRUN_ADDRESS = {
    "kind": "pickup",
    "service": "milkrun",
    "warehouse_name": "龙华仓",
    "province": "广东省",
    "city": "深圳市",
    "district": "龙华区",
    "street": "民治大道 1 号",
    "pickup_window": "10:00-12:00",  # the driver comes at 11:00 in the manual's example
    "orders_per_day": 80,
}
PAID_ADDRESS = {
    "kind": "pickup",
    "service": "paid",
    "warehouse_name": "二号仓",
    "province": "广东省",
    "city": "东莞市",
    "street": "东城路 8 号",
}


def driver_of(seller_id: str) -> str:
    """The id of the seller's driver (the Milkrun driver, or the paid pickup's courier)."""
    return f"D{seller_id[-3:]}"


def china(month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=CHINA)


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class ClockedGateway(Gateway):
    """A Gateway whose clock starts at a given time; restarted, it keeps its database,
    ports and token."""

    def __init__(self, tmp, db_url):
        # CLOSE_EVERY_MINUTES 0.02: a sweep every 1.2 s, so the schedule, not only the sweep
        # at start, is what closes a bag in these tests.
        super().__init__(tmp, db_url=db_url, extra_env={"BAGSCAN_CLOSE_EVERY_MINUTES": "0.02"})
        self.offset = 0

    def start_at(self, at: datetime) -> "ClockedGateway":
        self.offset = round(at.timestamp() - time.time())
        self.env["BAGSCAN_CLOCK_OFFSET"] = str(self.offset)
        self.start()
        return self

    def restart_at(self, at: datetime) -> "ClockedGateway":
        self.stop()
        return self.start_at(at)

    def now(self) -> datetime:
        """The gateway's clock, as its offset makes it."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        status, answer = self.api(method, path, body)
        assert status in (200, 201), (method, path, status, answer)
        return answer

    def bag(self, bag_no: str) -> dict:
        return self.ok("GET", f"/api/bags/{bag_no}")

    def parcel(self, trk: str) -> dict:
        return self.ok("GET", f"/api/parcels/{trk}")


@pytest.fixture
def clocked(tmp_path, database_url):
    gw = ClockedGateway(tmp_path, database_url)
    yield gw
    gw.stop()


@pytest.fixture
def seller(clocked, tmp_path):
    """seller(seller_id, address, parcels) -> the control channel of a handheld of a new seller
    account at `address`, with the driver on its route and its parcels imported, once the
    handheld holds the gateway's config (its clock set from the gateway's)."""
    started: list[SimHandheld] = []

    def make(seller_id: str, address: dict, parcels: list[str]) -> Handheld:
        gw = clocked
        account = gw.ok("POST", "/api/accounts", {"name": f"Shop {seller_id}"})["id"]
        store = {"seller_id": seller_id, "seller_name": f"Shop {seller_id}"}
        gw.ok("POST", "/api/stores", store)
        gw.ok("POST", f"/api/accounts/{account}/stores", store)
        address_id = gw.ok("POST", f"/api/accounts/{account}/addresses", address)["id"]
        driver = {**DRIVER, "id": driver_of(seller_id), "accounts": [account]}
        gw.ok("POST", "/api/drivers", driver)
        rows = [
            {"tracking_no": trk, "seller_id": seller_id, "status": "rts", "hub": "SZ"}
            for trk in parcels
        ]
        gw.ok("POST", "/api/parcels", {"parcels": rows})
        device_id = f"hh-{seller_id}"
        answer = provision.register(
            gw.url, gw.token, device_id, role="seller", account_id=account,
            pickup_address_id=address_id,
        )  # fmt: skip
        config = provision.device_config(answer, [], broker_host="127.0.0.1")
        sim = SimHandheld.with_config(tmp_path / "flash" / device_id, config)
        started.append(sim)
        ctl = sim.start()
        # The config message carries the parcels: once they are on flash, its time is taken.
        digest = sim.state_dir / "parcels" / "digest"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if int(digest.read_text().split()[0]) == len(parcels):
                    break
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"{device_id} never took the gateway's config")
        # A retained config's time is not taken (app/config.py): the gateway tells a handheld
        # whose status says its clock is unset its own time, and the next status says q 1. A
        # `wall` line sent before that would be overwritten by it.
        while time.monotonic() < deadline:
            devices = gw.ok("GET", "/api/devices")["devices"]
            status = next(d["status"] or {} for d in devices if d["device_id"] == device_id)
            if status.get("q") == 1:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"{device_id} never took the gateway's time")
        return ctl

    yield make
    for sim in started:
        sim.kill()


def set_wall(ctl: Handheld, at: datetime) -> None:
    """The handheld's clock reads `at` now (control line `wall`)."""
    ctl.send(f"wall {int(at.timestamp())}")
    ctl.state()  # the line is taken before the next one


def close_bag(ctl: Handheld, parcels: list[str], grams: int) -> str:
    """Bagging: the parcels into a new bag, weighed, closed; the bag's number."""
    for trk in parcels:
        assert ctl.scan(trk)["beep"] == "ok", trk
    ctl.weigh(grams)
    ctl.key("ok")
    bag_no = ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]
    ctl.weigh(0)
    return bag_no


def driver_scans(ctl: Handheld, driver_id: str, bags: list[str]) -> None:
    """Courier pickup on the seller's handheld: the driver signs in, scans the bags, signs."""
    ctl.key("mode")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "PICKUP")
    assert ctl.scan(f"DRV:{driver_id}")["beep"] == "ok"  # a badge scan beeps like every scan
    assert ctl.scan(f"PIN:{DRIVER['pin']}")["beep"] == "ok"
    for bag_no in bags:
        assert ctl.scan(bag_no)["beep"] == "ok", bag_no
    ctl.key("ok")
    assert ctl.expect(lambda o: o.get("screen", [""])[0] == "HANDOVER")["beep"] == "ok"


def synced(gw: ClockedGateway, *ctls: Handheld) -> None:
    for ctl in ctls:
        ctl.wait_synced()
    gw.wait_applied()


# --- Online time: "上网信息回传", the Milkrun and the paid-pickup examples ------------------


def test_parcels_received_aug_9_and_aug_10_are_online_at_the_pickup_scan_aug_8_1100(
    clocked, seller
):
    # Saturday Aug 8 2026, a minute before the driver comes: the sellers bag their parcels.
    clocked.start_at(china(8, 8, 10, 59))
    milkrun = seller("3000801", MILKRUN_ADDRESS, ["LZ808000001CN", "LZ808000002CN"])
    paid = seller("3000802", PAID_ADDRESS, ["LZ808000011CN"])
    milkrun_bag = close_bag(milkrun, ["LZ808000001CN", "LZ808000002CN"], 1_500)
    paid_bag = close_bag(paid, ["LZ808000011CN"], 800)
    # 11:00: the Milkrun driver and the paid pickup's courier scan the bags.
    for ctl, seller_id, bag_no in ((milkrun, "3000801", milkrun_bag), (paid, "3000802", paid_bag)):
        set_wall(ctl, china(8, 8, 11, 0))
        driver_scans(ctl, driver_of(seller_id), [bag_no])
    synced(clocked, milkrun, paid)
    for bag_no in (milkrun_bag, paid_bag):
        bag = clocked.bag(bag_no)
        assert bag["status"] == "picked_up"
        scanned = when(bag["picked_up_at"])
        assert china(8, 8, 11, 0) <= scanned < china(8, 8, 11, 1), bag["picked_up_at"]

    # Sunday Aug 9 08:00: the Milkrun parcel is received at the hub (no time given: now).
    clocked.restart_at(china(8, 9, 8, 0))
    clocked.ok("POST", "/api/hub/receipts", {"parcels": ["LZ808000001CN"]})
    parcel = clocked.parcel("LZ808000001CN")
    assert china(8, 9, 8, 0) <= when(parcel["received_at"]) < china(8, 9, 8, 2)
    assert parcel["online_reason"] == "PICKUP_SCAN"
    assert when(parcel["online_at"]) == when(clocked.bag(milkrun_bag)["picked_up_at"])
    assert when(parcel["online_at"]).astimezone(CHINA).strftime("%m-%d %H:%M") == "08-08 11:00"
    # Its bag-mate and the paid parcel are not at the hub yet: not online.
    assert clocked.parcel("LZ808000002CN")["online_at"] is None
    assert clocked.parcel("LZ808000011CN")["online_at"] is None

    # Monday Aug 10 08:00: the paid pickup's parcel is received.
    clocked.restart_at(china(8, 10, 8, 0))
    clocked.ok("POST", "/api/hub/receipts", {"parcels": ["LZ808000011CN"]})
    parcel = clocked.parcel("LZ808000011CN")
    assert china(8, 10, 8, 0) <= when(parcel["received_at"]) < china(8, 10, 8, 2)
    assert parcel["online_reason"] == "PICKUP_SCAN"
    assert when(parcel["online_at"]) == when(clocked.bag(paid_bag)["picked_up_at"])
    assert when(parcel["online_at"]).astimezone(CHINA).strftime("%m-%d %H:%M") == "08-08 11:00"


# --- Cut-offs: "付费揽收商上门揽收时效" -------------------------------------------------


@pytest.mark.parametrize(
    ("day", "next_day"),
    [
        pytest.param((8, 12), (8, 13), id="wednesday-aug-12"),
        pytest.param((8, 9), (8, 10), id="sunday-aug-9"),
    ],
)
def test_paid_pickup_bag_closed_at_1559_is_due_by_2000_and_at_1601_by_2000_next_day(
    clocked, seller, day, next_day
):
    # The gateway's clock at 16:00 that day; the handheld closes one bag at 15:59, one at 16:01.
    clocked.start_at(china(*day, 16, 0))
    ctl = seller("3000900", PAID_ADDRESS, ["LZ159000001CN", "LZ161000001CN"])
    set_wall(ctl, china(*day, 15, 59))
    before = close_bag(ctl, ["LZ159000001CN"], 700)
    set_wall(ctl, china(*day, 16, 1))
    after = close_bag(ctl, ["LZ161000001CN"], 900)
    synced(clocked, ctl)

    early, late = clocked.bag(before), clocked.bag(after)
    assert china(*day, 15, 59) <= when(early["closed_at"]) < china(*day, 16, 0)
    assert china(*day, 16, 1) <= when(late["closed_at"]) < china(*day, 16, 2)
    assert when(early["pickup_due_at"]) == china(*day, 20, 0)
    assert when(late["pickup_due_at"]) == china(*next_day, 20, 0)
    assert early["status"] == late["status"] == "awaiting_pickup"
    assert not early["late"] and not late["late"]


# --- Auto-close: a bag awaiting pickup for 72 h ------------------------------------------


def test_bag_awaiting_pickup_72_hours_is_closed_by_the_gateways_schedule(clocked, seller):
    # Wednesday Aug 12 2026, 10:00: a bag opened at 07:00 and closed now (awaiting pickup),
    # and a second bag opened and left open on the handheld.
    clocked.start_at(china(8, 12, 10, 0))
    ctl = seller("3001200", PAID_ADDRESS, ["LZ720000001CN", "LZ720000002CN"])
    set_wall(ctl, china(8, 12, 7, 0))
    assert ctl.scan("LZ720000001CN")["beep"] == "ok"
    stale = ctl.state()["bag"]
    set_wall(ctl, china(8, 12, 10, 0))
    assert close_bag(ctl, [], 1_200) == stale
    assert ctl.scan("LZ720000002CN")["beep"] == "ok"
    still_open = ctl.state()["bag"]
    synced(clocked, ctl)
    bag = clocked.bag(stale)
    (waiting,) = [h for h in bag["history"] if h["to"] == "awaiting_pickup"]
    since = when(waiting["at"])
    assert china(8, 12, 10, 0) <= since < china(8, 12, 10, 1)
    assert clocked.bag(still_open)["status"] == "submitted"

    # Saturday Aug 15, 30 s before the 72 h are up (75 h after the bag was opened): the
    # gateway restarted there sweeps at start and every 1.2 s (CLOSE_EVERY_MINUTES 0.02). 30 s:
    # a loaded machine took over 10 s to restart the gateway.
    due = since + timedelta(hours=72)
    clocked.restart_at(due - timedelta(seconds=30))
    assert clocked.now() < due - timedelta(seconds=2)
    assert clocked.bag(stale)["status"] == "awaiting_pickup"
    deadline = time.monotonic() + 90
    while clocked.bag(stale)["status"] == "awaiting_pickup":
        assert time.monotonic() < deadline, "the schedule never closed the bag"
        time.sleep(0.3)
    bag = clocked.bag(stale)
    assert bag["status"] == "closed"
    closing = [h for h in bag["history"] if h["to"] in ("closing", "closed")]
    assert [h["actor"] for h in closing] == ["system", "system"]
    assert due <= when(closing[0]["at"]) < due + timedelta(seconds=30)  # a sweep, not a day
    # The bag still open on the handheld is untouched, and its close there is taken. The
    # handheld's clock still runs from Aug 12 (no config message at the restart: see the
    # module's docstring), so it is set to the gateway's time first.
    assert clocked.bag(still_open)["status"] == "submitted"
    set_wall(ctl, clocked.now())
    assert close_bag(ctl, [], 600) == still_open
    synced(clocked, ctl)
    closed_late = clocked.bag(still_open)
    assert closed_late["status"] == "awaiting_pickup"
    assert due <= when(closed_late["closed_at"]) < due + timedelta(minutes=2)
    assert not [d for d in closed_late["disagreements"] if d.get("code") == "BAG_NOT_OPEN"]
