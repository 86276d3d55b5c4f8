"""Changes pushed to the handhelds that need them, as numbered deltas (issue 16).

A thread of the ingest process (gateway.serve) looks at the database every TICK_S, so no
writer has to know which handheld cares (hub receipts, parcel imports, the registry applying
records, store links, couriers all only write rows), and sends each device one delta per
tick with what changed for it (docs/protocol.md, "Config versions"):
- parcels whose row changed (imported, cancelled, received at the hub): to the seller
  devices of the account their store is linked to;
- parcels bagged or taken out on a handheld (parcel, parcel_remove records): to the other
  seller devices of its account, as status "bagged" or the parcel's own entry again;
- closed and picked-up bags with their bagging weight (bag_close, pickup records): to every
  hub device; closed bags to the seller devices of the bag's account (the courier's pickup
  list), and a picked-up bag off that list again (config_schema.BAG_GONE);
- the linked stores and the drivers of an account's route: to its seller devices.
A delta is a small config message of the same schema with "s", its version, and "b", the
version it applies to (devices.config_version numbers them). The last LOG_SIZE deltas of
each device are kept here: a device whose status reports an older version than it was sent
(offline, a message lost) gets the missing ones again, or a full config when they are gone.

A full config holds the newest parcels that fit one message (~440): a seller device whose
status, on its current version, reports fewer parcels on flash ("n") than its account has
is sent them all as a base index in pages (device_config.index_file; docs/protocol.md,
"Index pages"), again if they have not all arrived after PAGES_WAIT_S. Deltas land beside
the base, in the bucket files a full config replaces: after OVERLAY_LIMIT parcel entries
a device gets a full config (and so a new base) instead, which keeps those files small.

The time: a handheld sets its clock from a config message only when it is not a retained
one (a broker may keep that for hours, and the pickup scan's time is the legal pickup time),
so a device whose status says its clock is unset or off by more than CLOCK_RESYNC_S gets the
gateway's time alone, {"v": 1, "time": ...}, not retained; a restarted gateway (a new clock
offset, docs/deploy.md "The clock") corrects the handhelds online the same way.
"""

import json
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from gateway import clock, db, settings
from gateway.ingest import ledger
from gateway.models import Bag, Device, Driver, DriverAccount, Parcel, Record, Store
from gateway.services import couriers, device_config
from protocol import config_schema, wire

log = logging.getLogger(__name__)

TICK_S = 0.2  # the delivery bound is 2 s (issue 16): a tick, a query and a publish fit well
LOG_SIZE = 64  # deltas kept per device for catch-up; further behind takes a full config
# Parcel rows are found by updated_at, written by other transactions that may commit later
# than a row seen with a newer time: this much earlier is looked at again (and deduplicated).
OVERLAP = timedelta(seconds=30)
RECORD_OVERLAP = 500  # record ids looked at again, for the same reason
# A status reporting an older version than sent, unchanged this long: the device missed it.
SETTLE_S = 1.5
RETRY_S = 5.0  # at most one catch-up (or one time message) per device this often
# Off by more than the admin page flags (its wall read as the status arrives), a handheld is
# sent the gateway's time; a minute off is left alone, as a person set it (the sim's `wall`).
CLOCK_RESYNC_S = ledger.CLOCK_SKEW_LIMIT_S
DELTA_BUDGET = wire.MAX_MESSAGE - 256  # a delta larger goes as a full config
# Parcel entries sent in deltas since a device's last full config: past this the next change
# goes as a full config, and the index is sent again. The handheld reads a bucket file whole
# per lookup: 440 + 500 entries over 32 files stay under 1 KB each.
OVERLAY_LIMIT = 500
# Pages not all taken this long after they were sent (a lost page, a session the broker
# dropped): the whole index is sent again. Measured: 50,000 parcels, 14 pages, take 0.5-0.7 s
# on the host (docs/benchmarks.md, "Parcel index"); a chip is slower by tens.
PAGES_WAIT_S = 60.0

Publish = Callable[[str, bytes, bool], None]  # (device id, payload, retained)


class ConfigFeed:
    """The feed's state between ticks; tick() does one round (tests call it directly)."""

    def __init__(self, app: Flask, publish: Publish) -> None:
        self.app = app
        self.publish = publish
        self.log: dict[str, deque[tuple[int, bytes]]] = defaultdict(lambda: deque(maxlen=LOG_SIZE))
        self._parcel_mark = None  # newest Parcel.updated_at seen
        self._parcels_sent: dict[str, tuple] = {}  # tracking no -> (entry, updated_at)
        self._record_mark: int | None = None
        self._records_seen: set[int] = set()
        self._stores: dict[str, tuple] | None = None  # seller id -> (account id, name)
        self._drivers: set[tuple] | None = None  # (driver, account, updated_at, active)
        self._status_seen: dict[str, tuple[str, float]] = {}  # device -> (status_at, since)
        self._acted: dict[str, float] = {}  # device -> monotonic time of the last send
        self._timed: dict[str, float] = {}  # device -> monotonic time of the last time sent
        self._overlay: dict[str, int] = defaultdict(int)  # device -> parcels sent in deltas
        self._paged: dict[str, float] = {}  # device -> monotonic time its index pages went
        self._index_seen: dict[str, str] = {}  # device -> status_at of the last index check
        # account -> (device_config.index_state, index_file): the devices of an account share
        # one file while none of its parcels changes (50,000 take ~1 s to build).
        self._indexes: dict[int, tuple[tuple, bytes]] = {}
        self._index_built = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                with db.sessions(self.app)() as session:
                    self.tick(session)
            except Exception:  # noqa: BLE001 - a bad round must not end the feed
                log.exception("config feed: round failed")

    # --- one round ----------------------------------------------------------------------

    def tick(self, session: Session) -> int:
        """Find the changes since the last round and send them; returns the deltas sent."""
        devices = session.execute(
            select(Device.id, Device.role, Device.account_id).order_by(Device.id)
        ).all()
        sellers: dict[int, list[str]] = defaultdict(list)
        for device_id, role, account_id in devices:
            if role == "seller" and account_id is not None:
                sellers[account_id].append(device_id)
        hubs = [device_id for device_id, role, _ in devices if role == "hub"]
        stores = {
            seller_id: (account_id, name)
            for seller_id, account_id, name in session.execute(
                select(Store.seller_id, Store.account_id, Store.seller_name)
            )
        }
        changes: dict[str, dict] = defaultdict(dict)

        def put(targets, field: str, key: str, value) -> None:
            for device_id in targets:
                changes[device_id].setdefault(field, {})[key] = value

        self._parcels(session, stores, sellers, put)
        self._records(session, sellers, hubs, put)
        store_changed = self._store_changes(stores)
        for account_id in store_changed:
            linked = sorted((s, n) for s, (a, n) in stores.items() if a == account_id)
            for device_id in sellers.get(account_id, ()):
                changes[device_id]["stores"] = [s for s, _ in linked]
                changes[device_id]["store_names"] = dict(linked)
        driver_changed = self._driver_changes(session)
        for account_id in driver_changed:
            secret = settings.secret(session)
            drivers = [
                couriers.config_entry(d, secret, account_id)
                for d in couriers.drivers_of(session, account_id, device_config.MAX_DRIVERS)
            ]
            for device_id in sellers.get(account_id, ()):
                changes[device_id]["drivers"] = drivers
        # New names bring their glyphs (docs/firmware.md, "Languages").
        for account_id in store_changed | driver_changed:
            glyphs = device_config.name_glyphs(device_config.account_names(session, account_id))
            for device_id in sellers.get(account_id, ()):
                if glyphs:
                    changes[device_id][config_schema.GLYPHS] = glyphs
        sent = self._send(session, changes)
        # Columns, not ORM objects: with 10,000 handhelds online, loading them as objects
        # twice a round took 0.43 s of every 0.2 s (bench/config_fanout.py).
        online = session.execute(
            select(Device.id, Device.role, Device.account_id, Device.config_version, Device.status)
            .where(Device.online)
            .order_by(Device.id)
        ).all()
        self._catch_up(session, online)
        self._tell_time(online)
        return sent

    def _parcels(self, session, stores, sellers, put) -> None:
        if self._parcel_mark is None:  # first round: from now on
            self._parcel_mark = session.scalar(select(func.max(Parcel.updated_at))) or clock.now()
            return
        # Rows after the mark, and any row updated within OVERLAP of now (a transaction that
        # committed late). A window of OVERLAP before the mark kept a bulk import in it until
        # the next change: 50,000 parcels re-read every tick, 2-6 s each, which held the
        # parcel lookup's answers up for as long (bench/parcel_lookup.py).
        since = min(self._parcel_mark, clock.now() - OVERLAP)
        # Columns, not ORM objects: an import's rows are read again for OVERLAP, and 50,000
        # of them took 0.2 s a tick so, 2-6 s as objects.
        rows = session.execute(
            select(*device_config.ENTRY_COLUMNS, Parcel.updated_at).where(Parcel.updated_at > since)
        )
        for p in rows:
            entry = config_schema.parcel_entry(p.status, p.hub, p.seller_id, p.sea_big_item)
            if self._parcels_sent.get(p.tracking_no) == (entry, p.updated_at):
                continue
            self._parcels_sent[p.tracking_no] = (entry, p.updated_at)
            self._parcel_mark = max(self._parcel_mark, p.updated_at)
            account_id = stores.get(p.seller_id, (None,))[0]
            if account_id is not None:
                put(sellers.get(account_id, ()), "parcels", p.tracking_no, entry)
        self._parcels_sent = {k: v for k, v in self._parcels_sent.items() if v[1] > since}

    def _records(self, session, sellers, hubs, put) -> None:
        if self._record_mark is None:
            self._record_mark = session.scalar(select(func.max(Record.id))) or 0
            return
        rows = session.execute(
            select(Record.id, Record.device_id, Record.kind, Record.body, Device.account_id)
            .join(Device, Device.id == Record.device_id)
            .where(
                Record.id > self._record_mark - RECORD_OVERLAP,
                Record.kind.in_(("parcel", "parcel_remove", "bag_close", "pickup")),
            )
            .order_by(Record.id)
        ).all()
        rows = [r for r in rows if r.id not in self._records_seen]
        # The parcels and picked-up bags they name, in one query each (not one a record:
        # at 1,000 records/s that was 200 queries a round in the ingest process).
        trks = {r.body["trk"] for r in rows if r.kind in ("parcel", "parcel_remove")}
        parcels = {
            p.tracking_no: p
            for p in session.execute(
                select(*device_config.ENTRY_COLUMNS).where(Parcel.tracking_no.in_(trks))
            )
        }
        picked = {r.body["bag"] for r in rows if r.kind == "pickup"}
        bags = {
            b.bag_no: b
            for b in session.execute(
                select(Bag.bag_no, Bag.weight_g, Bag.account_id).where(Bag.bag_no.in_(picked))
            )
        }
        for record_id, device_id, kind, body, account_id in rows:
            self._records_seen.add(record_id)
            self._record_mark = max(self._record_mark, record_id)
            if kind in ("parcel", "parcel_remove"):
                p = parcels.get(body["trk"])
                if p is None:  # unknown to the gateway too: nothing to tell
                    continue
                status = config_schema.BAGGED if kind == "parcel" else p.status
                # The account's other handhelds, listed only for a parcel they are told of:
                # listed for every record, an account of 3,000 handhelds cost the gateway's
                # MQTT-side process 13 % of its time at 1,000 records/s (issue 20,
                # bench/fleet_load.py).
                others = [d for d in sellers.get(account_id, ()) if d != device_id]
                put(
                    others,
                    "parcels",
                    p.tracking_no,
                    config_schema.parcel_entry(status, p.hub, p.seller_id, p.sea_big_item),
                )
            else:
                grams = body.get("g")
                if kind == "pickup":
                    bag = bags.get(body["bag"])
                    grams, account_id = (
                        (None, None) if bag is None else (bag.weight_g, bag.account_id)
                    )
                    # Handed over: off the pickup list of every seller handheld of the account,
                    # the one that scanned it too (its list would show it again).
                    put(sellers.get(account_id, ()), "bags", body["bag"], config_schema.BAG_GONE)
                if grams is None:
                    continue
                entry = config_schema.bag_entry(grams)
                put(hubs, "bags", body["bag"], entry)
                if kind == "bag_close":
                    put(sellers.get(account_id, ()), "bags", body["bag"], entry)
        low = self._record_mark - RECORD_OVERLAP
        self._records_seen = {i for i in self._records_seen if i > low}

    def _store_changes(self, stores: dict[str, tuple]) -> set[int]:
        """Accounts whose linked stores (or their names) changed since the last round."""
        before, self._stores = self._stores, stores
        if before is None:
            return set()
        changed: set[int] = set()
        for seller_id in set(before) | set(stores):
            old, new = before.get(seller_id), stores.get(seller_id)
            if old != new:
                changed |= {a for a in (old and old[0], new and new[0]) if a is not None}
        return changed

    def _driver_changes(self, session: Session) -> set[int]:
        """Accounts whose route's drivers changed since the last round."""
        rows = set(
            session.execute(
                select(Driver.id, DriverAccount.account_id, Driver.updated_at, Driver.active).join(
                    DriverAccount, DriverAccount.driver_id == Driver.id
                )
            ).tuples()
        )
        before, self._drivers = self._drivers, rows
        if before is None:
            return set()
        return {row[1] for row in before ^ rows}

    # --- sending ------------------------------------------------------------------------

    def _send(self, session: Session, changes: dict[str, dict]) -> int:
        out: list[tuple[str, bytes, bool]] = []
        now = int(clock.now().timestamp())
        versions = device_config.next_versions(session, list(changes))
        for device_id in sorted(changes):
            version = versions[device_id]
            msg = {"v": wire.VERSION, "time": now, "s": version, "b": version - 1}
            msg.update(changes[device_id])
            data = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()
            self._overlay[device_id] += len(msg.get("parcels", ()))
            # A big change: the whole config is no larger. Many small ones: the bucket files
            # the deltas fill would grow past what a lookup should read.
            if len(data) > DELTA_BUDGET or self._overlay[device_id] > OVERLAY_LIMIT:
                device = session.get(Device, device_id)
                out.append(
                    (device_id, device_config.payload(session, device, version=version), True)
                )
                self._full_config_sent(device_id)
                continue
            error = config_schema.delta_error(msg)
            if error:  # only a bug gets here: never send what the handheld cannot read
                raise RuntimeError(f"delta for {device_id} off its schema: {error}")
            self.log[device_id].append((version, data))
            out.append((device_id, data, False))
        session.commit()  # the versions, before any device can report one
        for device_id, data, retained in out:
            self.publish(device_id, data, retained)
            self._acted[device_id] = time.monotonic()
        return len(out)

    def _catch_up(self, session: Session, online: list[Row]) -> None:
        """Resend what a device reports it has not taken: the missing deltas, or a full config
        when they are no longer kept (too far behind, or this process restarted)."""
        now = time.monotonic()
        sizes: dict[int, tuple] = {}  # account -> device_config.index_state, this round
        self._index_built = False  # one index file built a round: the next round's deltas wait
        for device in online:
            status = device.status or {}
            have = status.get("s")
            if have == device.config_version:
                self._index(session, device, status, now, sizes)
                continue
            if not isinstance(have, int):
                continue
            at = str(status.get("status_at"))
            seen = self._status_seen.get(device.id)
            if seen is None or seen[0] != at:
                self._status_seen[device.id] = (at, now)
                continue
            if now - seen[1] < SETTLE_S or now - self._acted.get(device.id, 0) < RETRY_S:
                continue
            self._acted[device.id] = now
            missing = [d for v, d in self.log.get(device.id, ()) if v > have]
            if have < device.config_version and len(missing) == device.config_version - have:
                log.info("config feed: %s resent versions %d..", device.id, have + 1)
                for data in missing:
                    self.publish(device.id, data, False)
                continue
            if have > device.config_version:  # the database was reset: number above it
                session.execute(
                    update(Device).where(Device.id == device.id).values(config_version=have)
                )
            version = device_config.next_version(session, device.id)
            data = device_config.payload(session, session.get(Device, device.id), version=version)
            session.commit()
            log.info("config feed: %s had version %d: full config %d", device.id, have, version)
            self._full_config_sent(device.id)
            self.publish(device.id, data, True)

    def _full_config_sent(self, device_id: str) -> None:
        """A full config replaces the handheld's bucket files and drops its base index: the
        deltas before it are moot, and the index is sent again when its status comes."""
        self.log[device_id].clear()
        self._overlay[device_id] = 0
        self._paged.pop(device_id, None)

    def _index(
        self, session: Session, device: Row, status: dict, now: float, sizes: dict[int, tuple]
    ) -> None:
        """Send a seller device its account's parcels in index pages when its status reports
        fewer on flash than the account has: checked when a new status arrives, or when
        pages sent have not all been taken within PAGES_WAIT_S."""
        if device.role != "seller" or device.account_id is None:
            return
        at = str(status.get("status_at"))
        sent = self._paged.get(device.id)
        if sent is None and self._index_seen.get(device.id) == at:
            return
        if sent is not None and now - sent < PAGES_WAIT_S:
            return
        self._index_seen[device.id] = at
        self._paged.pop(device.id, None)
        n = status.get("n")
        if not isinstance(n, int):
            return
        account = device.account_id
        if account not in sizes:
            sizes[account] = device_config.index_state(session, session.get(Device, device.id))
        if n >= sizes[account][0]:
            return
        cached = self._indexes.get(account)
        if cached is None or cached[0] != sizes[account]:
            if self._index_built:
                self._index_seen.pop(device.id, None)  # checked again next round
                return
            self._index_built = True
            cached = self._indexes[account] = (
                sizes[account],
                device_config.index_file(session, session.get(Device, device.id)),
            )
        pages = config_schema.index_pages(device.config_version, cached[1])
        log.info(
            "config feed: %s has %d parcels of %d: index in %d pages",
            device.id,
            n,
            sizes[account][0],
            len(pages),
        )
        self._paged[device.id] = now
        for data in pages:
            self.publish(device.id, data, False)

    def _tell_time(self, online: list[Row]) -> None:
        """Send the gateway's time to each online handheld whose clock is unset or off."""
        now = time.monotonic()
        for device in online:
            status = device.status or {}
            skew = status.get("clock_skew_s")
            if status.get("q") and isinstance(skew, int) and abs(skew) <= CLOCK_RESYNC_S:
                continue
            if now - self._timed.get(device.id, -RETRY_S) < RETRY_S:
                continue
            self._timed[device.id] = now
            data = {"v": wire.VERSION, "time": int(clock.now().timestamp())}
            self.publish(device.id, json.dumps(data).encode(), False)


def start(app: Flask, publish: Publish) -> ConfigFeed:
    feed = ConfigFeed(app, publish)
    feed.start()
    return feed
