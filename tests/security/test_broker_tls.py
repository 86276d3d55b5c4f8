"""The shipped Mosquitto configuration with TLS on the device listener, as deployed
(deploy/mosquitto/bagscan.conf, docs/deploy.md): handhelds reach the gateway over TLS with
their own login, the ACL holds there as on the plain listener of the other broker tests, and
a connection without TLS gets nothing."""

import json
import socket
import subprocess
import time

import pytest
from broker_under_test import BrokerUnderTest, wait_for

from devkit.wire_device import record
from protocol import wire, wire_schema


@pytest.fixture
def certs(tmp_path):
    """A CA and the broker's certificate for localhost, signed by it, as bagscan.crt/.key."""
    d = tmp_path / "certs"
    d.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=bagscan test CA")  # fmt: skip
    openssl("req", *ec, "-keyout", "bagscan.key", "-out", "bagscan.csr", "-subj", "/CN=localhost")
    (d / "san").write_text("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", "bagscan.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "bagscan.crt", "-days", "2", "-extfile", "san")  # fmt: skip
    return d


@pytest.fixture
def tls_broker(tmp_path, certs):
    b = BrokerUnderTest("mosquitto", tmp_path, certs=certs)
    yield b
    b.close()


def test_a_handheld_syncs_over_tls_and_reads_only_its_own_topics(tls_broker, clients, certs):
    password = tls_broker.provision("hh-a")
    tls_broker.provision("hh-b")  # with a retained config of its own
    a = clients(tls_broker.device_port, "hh-a", password, "hh-a", ca=certs / "ca.crt")
    assert a.accepted
    a.subscribe(wire.topic("hh-a", wire.ACK))
    a.subscribe(wire.topic("hh-b", wire.CONFIG))  # another device's: the ACL gives nothing
    a.subscribe(wire.topic("hh-a", wire.CONFIG))
    wait_for(lambda: wire.topic("hh-a", wire.CONFIG) in a.topics(), 10, "no own config")
    a.publish(wire.topic("hh-a", wire.EVENTS), _events(record(1)))
    wait_for(lambda: tls_broker.seqs("hh-a") == [1], 15, "the record was not stored")
    wait_for(lambda: wire.topic("hh-a", wire.ACK) in a.topics(), 10, "no acknowledgement")
    time.sleep(1.0)  # what hh-b's topic could still deliver
    assert wire.topic("hh-b", wire.CONFIG) not in a.topics()
    # hh-a's login does not publish for hh-b, over TLS either
    a.publish(wire.topic("hh-b", wire.EVENTS), _events(record(1)))
    time.sleep(1.0)
    assert tls_broker.seqs("hh-b") == []


def test_without_tls_or_with_a_wrong_password_the_device_listener_takes_nothing(
    tls_broker, clients, certs
):
    password = tls_broker.provision("hh-a")
    wrong = clients(tls_broker.device_port, "hh-a", password + "x", "hh-a", ca=certs / "ca.crt")
    assert not wrong.accepted
    # A plain MQTT CONNECT to the TLS port is not MQTT to it: no CONNACK comes back.
    with socket.create_connection(("127.0.0.1", tls_broker.device_port), timeout=5) as plain:
        plain.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
        try:
            answer = plain.recv(4)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    assert not answer.startswith(b"\x20")


def _events(rec: dict) -> bytes:
    return wire_schema.events_payload([json.dumps(rec).encode()])
