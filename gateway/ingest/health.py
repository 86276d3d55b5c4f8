"""Whether the ingest holds its MQTT session, as /api/health reports it in every HTTP process.

The ingest runs in bagscan-gateway's main process; HTTP may be served by gunicorn workers, so
the ingest writes its state to a small file whose path gateway.serve puts in the environment
(BAGSCAN_INGEST_STATE) of itself and its workers. Without it (a WSGI app with no ingest of its
own, the test client) health says nothing about MQTT.

A session that was lost a moment ago counts as lost for LOSS_WINDOW_S: a client that keeps
taking the gateway's session (issue 21) leaves it connected now and then, never for long.
"""

import json
import os
import time
from pathlib import Path

STATE_ENV = "BAGSCAN_INGEST_STATE"
LOSS_WINDOW_S = 15.0


class IngestState:
    """Written by the ingest (paho's network thread) on every change."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lost_at: float | None = None
        self._write(up=False, reason="not connected to the broker yet")

    def up(self) -> None:
        self._write(up=True, reason="")

    def down(self, reason: str, lost: bool = True) -> None:
        if lost:
            self.lost_at = time.time()
        self._write(up=False, reason=reason)

    def _write(self, up: bool, reason: str) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"up": up, "reason": reason, "lost_at": self.lost_at}))
        os.replace(tmp, self.path)  # a reader never sees half a file


def problem(now: float | None = None) -> str | None:
    """Why the ingest is not taking device messages now, or None when it is (or not ours)."""
    path = os.environ.get(STATE_ENV)
    if not path:
        return None
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return "the MQTT ingest has not started"
    if not state["up"]:
        return "MQTT ingest: " + state["reason"]
    lost_at = state["lost_at"]
    now = time.time() if now is None else now
    if lost_at is not None and now - lost_at < LOSS_WINDOW_S:
        return f"MQTT ingest lost its session {now - lost_at:.0f} s ago"
    return None
