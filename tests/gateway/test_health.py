"""/api/health, the log and the admin pages tell the truth while a part is away, and clear by
themselves when it is back (issue 19): a real bagscan-gateway whose PostgreSQL connection runs
through a proxy the test cuts, and one whose MQTT broker is not there."""

import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import create_engine, text

from devkit.database import PG_SERVER
from devkit.gateway_process import Gateway
from devkit.ports import free_port

LOG_EVERY = 2  # BAGSCAN_HEALTH_LOG_SECONDS in these tests


class CuttableProxy:
    """TCP from a local port to PostgreSQL; cut() refuses and drops every connection."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown first: close() alone leaves a thread blocked in accept() listening
                self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def banner(page: str) -> str | None:
    found = re.search(r'<p class="flash error health-banner"[^>]*>([^<]*)</p>', page)
    return found.group(1).strip() if found else None


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


@pytest.fixture
def postgresql():
    """A new database on the test PostgreSQL server (BAGSCAN_TEST_PG), dropped after."""
    name = "bagscan_health_" + os.urandom(4).hex()
    server = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield name
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def test_database_down_is_reported_at_an_interval_and_clears_by_itself(tmp_path, postgresql):
    url = create_engine(PG_SERVER).url
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.open()
    db_url = url.set(port=proxy.port, database=postgresql).render_as_string(hide_password=False)
    gw = Gateway(tmp_path, db_url=db_url, extra_env={"BAGSCAN_HEALTH_LOG_SECONDS": str(LOG_EVERY)})
    gw.start()
    try:
        assert gw.api("GET", "/api/health")[0] == 200
        proxy.cut()
        status, body = wait_for(
            lambda: (r := gw.api("GET", "/api/health"))[0] == 503 and r, 20, "health stayed ok"
        )
        assert body["error"]["code"] == "DATABASE_DOWN"
        page = get(gw.url + "/login")[1]
        assert banner(page) == "Not working: the database does not answer"
        # pages and API calls that need the database: 503 with the reason, not a 500
        code, page = get(gw.url + "/receipts/R1/seller")  # the public receipt check
        assert code == 503 and banner(page) == "Not working: the database does not answer"
        status, body = gw.api("GET", "/api/bags")
        assert status == 503 and body["error"]["code"] == "DATABASE_DOWN"
        down_at = time.monotonic()
        for _ in range(20):  # many requests: still one log line per interval
            gw.api("GET", "/api/health")
        time.sleep(3 * LOG_EVERY)
        down_for = time.monotonic() - down_at
        said = gw.log.read_text().count("not working: the database does not answer")
        assert 2 <= said <= down_for / LOG_EVERY + 2, said

        proxy.open()
        wait_for(lambda: gw.api("GET", "/api/health")[0] == 200, 20, "health never ok again")
        page = get(gw.url + "/login")[1]
        assert banner(page) is None
        wait_for(lambda: "working again: database" in gw.log.read_text(), 10, "no all-clear")
    finally:
        gw.stop()
        proxy.cut()


def test_broker_away_shows_on_the_admin_pages_and_in_the_log(tmp_path):
    closed = free_port()
    gw = Gateway(
        tmp_path,
        mqtt_url=f"mqtt://127.0.0.1:{closed}",
        extra_env={"BAGSCAN_HEALTH_LOG_SECONDS": str(LOG_EVERY)},
    ).start()
    try:
        status, body = gw.api("GET", "/api/health")
        assert status == 503 and body["error"]["code"] == "INGEST_DOWN"
        code, page = get(gw.url + "/login")
        assert code == 200 and "MQTT ingest" in banner(page)
        wait_for(
            lambda: gw.log.read_text().count("not working: MQTT ingest") >= 2,
            4 * LOG_EVERY + 5,
            "the log did not repeat that the ingest is down",
        )
    finally:
        gw.stop()
