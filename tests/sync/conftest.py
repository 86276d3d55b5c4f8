"""Sync test fixtures."""

import pytest
from syncstack import Stack

from devkit.wire_device import RawMQTT


@pytest.fixture(autouse=True)
def close_raw_connections():
    yield
    RawMQTT.close_all()


@pytest.fixture(params=["mosquitto", "embedded"])
def stack(request, tmp_path):
    """A gateway behind a broker: a Mosquitto of this test, or the gateway's embedded one."""
    s = Stack(request.param, tmp_path)
    yield s
    s.close()
