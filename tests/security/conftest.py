"""Fixtures of the broker tests: `broker` (each test runs against the embedded broker and
Mosquitto) and `clients` (MQTT connections closed after the test)."""

import pytest
from broker_under_test import BrokerUnderTest, Client


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request, tmp_path):
    b = BrokerUnderTest(request.param, tmp_path)
    yield b
    b.close()


@pytest.fixture
def clients():
    """Client(...) that is closed after the test."""
    opened: list[Client] = []

    def connect(*args, **kwargs) -> Client:
        client = Client(*args, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()
