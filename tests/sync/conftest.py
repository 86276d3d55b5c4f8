"""Sync test fixtures."""

import pytest

from bench.sync_device import RawMQTT


@pytest.fixture(autouse=True)
def close_raw_connections():
    yield
    RawMQTT.close_all()
