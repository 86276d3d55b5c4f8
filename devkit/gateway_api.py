"""The gateway's JSON API from the tools and tests: one bearer-token request (docs/api.md)."""

import json
import time
import urllib.error
import urllib.request


def call(
    base: str,
    token: str,
    method: str,
    path: str,
    body: dict | None = None,
    timeout: float = 30,
    raw: bytes | None = None,
) -> tuple[int, dict]:
    """(status, JSON body); a 4xx/5xx answer is returned, not raised. OSError if unreachable.
    raw: a file's bytes as the body instead (application/octet-stream)."""
    if raw is not None:
        data, content_type = raw, "application/octet-stream"
    else:
        data = json.dumps(body).encode() if body is not None else None
        content_type = "application/json"
    req = urllib.request.Request(
        base.rstrip("/") + path,
        method=method,
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        raw = err.read().decode(errors="replace")
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, {"error": {"code": "NOT_JSON", "message": raw[:200]}}


def wait_applied(
    base: str, token: str, timeout: float, device_ids: set[str] | None = None
) -> dict[str, int]:
    """Wait until the gateway has applied every stored record of these devices (None: all) to
    the bags; returns the records still unapplied per device when the time is up ({}: done).
    An acknowledgement means stored; applying may follow it (docs/protocol.md, step 5)."""
    deadline = time.monotonic() + timeout
    while True:
        devices = call(base, token, "GET", "/api/devices")[1]["devices"]
        behind = {
            d["device_id"]: d["unapplied"]
            for d in devices
            if d["unapplied"] and (device_ids is None or d["device_id"] in device_ids)
        }
        if not behind or time.monotonic() > deadline:
            return behind
        time.sleep(0.1)
