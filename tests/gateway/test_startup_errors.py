"""bagscan-gateway that cannot start says why in one line on stderr and exits 2 (issue 19):
no traceback, nothing else."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.ports import free_port

EXE = Path(sys.executable).with_name("bagscan-gateway")


def start(tmp_path: Path, **settings: str) -> tuple[int, list[str]]:
    env = dict(
        os.environ,
        BAGSCAN_DATABASE_URL=f"sqlite:///{tmp_path / 'gateway.sqlite'}",
        BAGSCAN_HTTP_PORT=str(free_port()),
        BAGSCAN_MQTT_PORT=str(free_port()),
        BAGSCAN_MQTT_URL="",
        BAGSCAN_API_TOKEN="t",
    )
    env.update(settings)
    done = subprocess.run([str(EXE)], env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr.splitlines()


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"BAGSCAN_DATABASE_URL": "nonsense"}, "BAGSCAN_DATABASE_URL is not a database URL"),
        ({"BAGSCAN_DATABASE_URL": "mysq://db/x"}, "BAGSCAN_DATABASE_URL is not a database URL"),
        (
            {"BAGSCAN_DATABASE_URL": "sqlite:////no/such/folder/bagscan.sqlite"},
            "the folder /no/such/folder of the SQLite database",
        ),
        (
            {"BAGSCAN_HTTP_PORT": "abc"},
            "BAGSCAN_HTTP_PORT must be a port number (1-65535), not 'abc'",
        ),
        ({"BAGSCAN_MQTT_PORT": "70000"}, "BAGSCAN_MQTT_PORT must be a port number"),
        ({"BAGSCAN_HTTP_WORKERS": "-1"}, "BAGSCAN_HTTP_WORKERS must be a whole number >= 0"),
        ({"BAGSCAN_LOG_FORMAT": "xml"}, "BAGSCAN_LOG_FORMAT must be text or json"),
        ({"BAGSCAN_BAGGABLE_HUBS": '["XX"]'}, "BAGGABLE_HUBS must list hubs of"),
        ({"BAGSCAN_MQTT_DISPATCH": "hash"}, "BAGSCAN_MQTT_DISPATCH must be partition or share"),
        ({"BAGSCAN_MQTT_SHARE": "bagscan"}, "BAGSCAN_MQTT_SHARE is for several gateway instances"),
    ],
)
def test_a_bad_setting_is_one_line(tmp_path, settings, says):
    code, lines = start(tmp_path, **settings)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("bagscan-gateway: ") and says in lines[0]


def test_postgresql_down_is_one_line_without_the_password(tmp_path):
    closed = free_port()  # nothing listens there
    url = f"postgresql+psycopg://bagscan:s3cret@127.0.0.1:{closed}/bagscan"
    code, lines = start(tmp_path, BAGSCAN_DATABASE_URL=url)
    assert code == 2
    assert len(lines) == 1, lines
    assert (
        f"cannot reach the database postgresql+psycopg://bagscan:***@127.0.0.1:{closed}" in lines[0]
    )
    assert "Connection refused" in lines[0] and "s3cret" not in lines[0]


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("BAGSCAN_HTTP_PORT", "HTTP port {port} is taken by another program"),
        ("BAGSCAN_MQTT_PORT", "the embedded MQTT broker's port {port} is taken"),
    ],
)
def test_a_taken_port_is_one_line(tmp_path, setting, says):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        code, lines = start(tmp_path, **{setting: str(port)})
    assert code == 2
    assert len(lines) == 1, lines
    assert says.format(port=port) in lines[0] and f"set {setting}" in lines[0]
