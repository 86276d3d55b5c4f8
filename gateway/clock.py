"""The gateway's one clock: every "now" that decides a domain fact (a deadline, lateness, the
auto-close, a receipt's time, how long a parcel has been in transit) is `clock.now()`.

Set for a demo or a test run (docs/deploy.md, "The clock"): CLOCK_OFFSET (BAGSCAN_CLOCK_OFFSET)
shifts it by whole seconds and it runs on from there; it is process-wide, read by
create_app, because the model layer's defaults and the ingest worker take their times outside
any request. Tests in the gateway's process may also `freeze` it at a time and `advance` it.
Handhelds follow it: the config message carries it, and they set their clocks from it.
"""

from datetime import UTC, datetime, timedelta

from flask import Flask

_offset = timedelta()
_frozen: datetime | None = None


def now() -> datetime:
    """The gateway's time, UTC-aware."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def init_app(app: Flask) -> None:
    """Take CLOCK_OFFSET (seconds, default 0) from the app's config; unfreezes the clock."""
    global _offset, _frozen
    raw = app.config.get("CLOCK_OFFSET") or 0
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"CLOCK_OFFSET must be seconds, not {raw!r}")
    _offset = timedelta(seconds=raw)
    _frozen = None


def freeze(at: datetime) -> None:
    """Stop the clock at `at` (timezone-aware) until the next freeze, advance or init_app."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("freeze needs a timezone-aware time")
    _frozen = at.astimezone(UTC)


def advance(by: timedelta) -> None:
    """Move a frozen clock on by `by` (a test's hours passing)."""
    global _frozen
    if _frozen is None:
        raise RuntimeError("advance needs a frozen clock")
    _frozen += by
