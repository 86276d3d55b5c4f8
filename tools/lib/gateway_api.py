"""The gateway's JSON API from the tools and tests: one bearer-token request (docs/api.md)."""

import json
import urllib.error
import urllib.request


def call(
    base: str, token: str, method: str, path: str, body: dict | None = None, timeout: float = 30
) -> tuple[int, dict]:
    """(status, JSON body); a 4xx/5xx answer is returned, not raised. OSError if unreachable."""
    req = urllib.request.Request(
        base.rstrip("/") + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
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
