"""A bagscan-gateway process on free ports, for tests and benches."""

import os
import subprocess
import sys
from pathlib import Path

import psutil

from devkit import gateway_api
from devkit.ports import free_port, wait_port


class Gateway:
    """A bagscan-gateway process on free ports: embedded broker, or mqtt_url given."""

    def __init__(
        self,
        tmp: Path,
        mqtt_url: str = "",
        extra_env: dict | None = None,
        db_url: str | None = None,
    ):
        self.http_port = free_port()
        self.mqtt_port = free_port()
        self.token = "test-token-" + os.urandom(4).hex()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.db_url = db_url or f"sqlite:///{tmp / 'gateway.sqlite'}"
        self.log = tmp / "gateway.log"
        self.env = dict(
            os.environ,
            BAGSCAN_HTTP_PORT=str(self.http_port),
            BAGSCAN_MQTT_PORT=str(self.mqtt_port),
            BAGSCAN_API_TOKEN=self.token,
            BAGSCAN_DATABASE_URL=self.db_url,
            BAGSCAN_MQTT_URL=mqtt_url,
            **(extra_env or {}),
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Gateway":
        exe = Path(sys.executable).with_name("bagscan-gateway")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe)], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_port(self.http_port, timeout=30)
        return self

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:  # a loaded machine: do not leave it running
                self.proc.kill()
                self.proc.wait(20)

    def cpu_seconds(self) -> dict[str, float]:
        """Processor seconds (user and system) used so far by the gateway's MQTT side, its
        store process (gateway/ingest/writer.py) and, on PostgreSQL, the applier's process
        (gateway/ingest/applier.py), for the benches' shares of a core."""
        main = psutil.Process(self.proc.pid)
        used: dict[str, float] = {}
        for proc in [main, *main.children(recursive=True)]:
            command = " ".join(proc.cmdline())
            name = "MQTT side"
            if "gateway.ingest.writer" in command:
                name = "store process"
            elif "gateway.ingest.applier" in command:
                name = "applier"
            used[name] = used.get(name, 0.0) + sum(proc.cpu_times()[:2])
        return used

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        return gateway_api.call(self.url, self.token, method, path, body, timeout=10)

    def wait_applied(self, timeout: float = 30) -> None:
        behind = gateway_api.wait_applied(self.url, self.token, timeout)
        assert not behind, f"records stored but not applied: {behind}"
