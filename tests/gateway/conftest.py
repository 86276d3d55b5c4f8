"""Gateway fixtures: an app on a fresh migrated SQLite, an API client, handhelds that send records."""

import itertools
import os
import shutil
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from devkit.database import PG_SERVER, TEST_DB
from devkit.sample_world import DRIVER_PIN, SELLER, TOKEN
from gateway import create_app, db
from gateway.ingest import registry
from gateway.models import Device, Record
from gateway.services import devices
from protocol import wire, wire_schema

SECRET = "test-secret-0123456789"


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory):
    """One SQLite file at the newest migration; each test gets a copy (migrating is slow)."""
    path = tmp_path_factory.mktemp("template") / "gateway.sqlite"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(tmp_path, migrated_db):
    """A fresh database at the newest migration: a SQLite copy, or with
    BAGSCAN_TEST_DB=postgresql a schema of its own on PostgreSQL (devkit.database.PG_SERVER)."""
    if TEST_DB == "sqlite":
        path = tmp_path / "gateway.sqlite"
        shutil.copyfile(migrated_db, path)
        yield f"sqlite:///{path}"
        return
    pg = f"{PG_SERVER}/postgres"
    schema = "t_" + os.urandom(6).hex()
    admin = create_engine(pg)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{pg}{'&' if '?' in pg else '?'}options=-csearch_path%3D{schema}"
    db.upgrade(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def app(database_url):
    url = database_url
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "API_TOKEN": TOKEN,
            "SECRET_KEY": SECRET,
            "PUBLIC_URL": "https://gw.test",
        }
    )
    yield app
    app.extensions["bagscan.engine"].dispose()


class Api:
    """The JSON API with the bearer token; returns (status, json)."""

    def __init__(self, client):
        self.client = client
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def get(self, path: str, **kw):
        resp = self.client.get(path, headers=self.headers, **kw)
        return resp.status_code, resp.get_json(silent=True)

    def post(self, path: str, body=None, **kw):
        resp = self.client.post(path, json=body, headers=self.headers, **kw)
        return resp.status_code, resp.get_json(silent=True)

    def patch(self, path: str, body=None, **kw):
        resp = self.client.patch(path, json=body, headers=self.headers, **kw)
        return resp.status_code, resp.get_json(silent=True)

    def raw(self, path: str):
        return self.client.get(path, headers=self.headers)


@pytest.fixture
def api(app):
    return Api(app.test_client())


class Handheld:
    """Sends records as the ingest would store them, and applies them through the registry."""

    def __init__(self, app, device_id: str):
        self.app = app
        self.id = device_id
        self._t = itertools.count(1)

    def send(self, kind: str, at: datetime, **fields) -> None:
        with db.transaction(self.app) as session:
            device = session.get(Device, self.id)
            seq = device.applied_seq + 1
            body = {"s": seq, "b": 1, "t": next(self._t), "w": int(at.timestamp()), "q": 1}
            body |= {"k": kind, **fields}
            err = wire_schema.record_error(body)
            if err:
                raise ValueError(err)
            record = Record(
                device_id=self.id,
                seq=seq,
                boot=1,
                kind=kind,
                ticks=body["t"],
                wall=body["w"],
                clock_ok=True,
                body=body,
                received_at=datetime.now(UTC),
                occurred_at=at,
            )
            session.add(record)
            session.flush()
            registry.apply(session, device, record)
            device.applied_seq = seq

    def bag(self, n: int) -> str:
        with db.sessions(self.app)() as session:
            return wire.bag_number(session.get(Device, self.id).bag_range_lo + n)


@pytest.fixture
def handheld(app):
    def make(device_id: str, **binding) -> Handheld:
        with db.transaction(app) as session:
            device, _ = devices.provision(session, device_id, 1000)
            for name, value in binding.items():
                setattr(device, name, value)
        return Handheld(app, device_id)

    return make


@pytest.fixture
def world(app, api, handheld):
    """One seller set up as the manual describes, a driver, parcels, a seller and a hub handheld."""
    status, account = api.post("/api/accounts", {"name": "Shenzhen Trading"})
    assert status == 201, account
    aid = account["id"]
    assert api.post("/api/stores", {"seller_id": SELLER[0], "seller_name": SELLER[1]})[0] == 201
    assert api.post("/api/stores", {"seller_id": "2000456", "seller_name": "义乌小店"})[0] == 201
    link = {"seller_id": SELLER[0], "seller_name": SELLER[1]}
    assert api.post(f"/api/accounts/{aid}/stores", link)[0] == 200
    status, pickup = api.post(
        f"/api/accounts/{aid}/addresses",
        {
            "kind": "pickup",
            "service": "milkrun",
            "warehouse_name": "龙华仓",
            "province": "广东省",
            "city": "深圳市",
            "district": "龙华区",
            "street": "民治大道 1 号",
            # The seller's Milkrun agreement: its driver comes 15:00-19:00; its application
            # counted 80 orders a day.
            "pickup_window": "15:00-19:00",
            "orders_per_day": 80,
        },
    )
    assert status == 201, pickup
    status, ret = api.post(
        f"/api/accounts/{aid}/addresses",
        {
            "kind": "return",
            "seller_id": SELLER[0],
            "warehouse_name": "退货仓",
            "street": "X 路 2 号",
        },
    )
    assert status == 201, ret
    status, drv = api.post(
        "/api/drivers",
        {"id": "D042", "name": "王师傅", "badge": "B-42", "pin": DRIVER_PIN, "accounts": [aid]},
    )
    assert status == 201, drv
    rows = [
        {"tracking_no": f"LZ{i:09d}CN", "seller_id": SELLER[0], "status": "rts", "hub": "SZ"}
        for i in range(1, 6)
    ]
    rows += [
        {"tracking_no": "LZPENDING01", "seller_id": SELLER[0], "status": "pending", "hub": "SZ"},
        {"tracking_no": "LZOTHER0001", "seller_id": "2000456", "status": "rts", "hub": "YW"},
        {"tracking_no": "LZLOOSE0001", "seller_id": SELLER[0], "status": "rts", "hub": "SZ"},
    ]
    status, body = api.post("/api/parcels", {"parcels": rows})
    assert status == 200, body

    class World:
        account_id = aid
        pickup_address_id = pickup["id"]
        seller = handheld(
            "hh-seller", account_id=aid, pickup_address_id=pickup["id"], role="seller"
        )
        hub = handheld("hh-hub", role="hub")
        parcels = [r["tracking_no"] for r in rows[:5]]

    return World
