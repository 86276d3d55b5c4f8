"""Logging for the gateway's processes: one format (BAGSCAN_LOG_FORMAT: text or json) and one
level (BAGSCAN_LOG_LEVEL) for all.

A log line about a device's record carries the device id and the record's sequence number as
fields of their own (`extra=logs.about(device_id, seq)`), so JSON lines can be filtered by
them (docs/deploy.md, "Logs").
"""

import json
import logging
import os
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, device and seq where one
    applies, and the traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("device", "seq"):
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def about(device_id: str | None, seq: int | None = None) -> dict:
    """The `extra` of a log call about a device (and one of its records)."""
    return {"device": device_id, "seq": seq}


def setup() -> None:
    """Configure the root logger from the environment; ValueError names a bad setting."""
    kind = os.environ.get("BAGSCAN_LOG_FORMAT", "text").strip().lower() or "text"
    if kind not in FORMATS:
        raise ValueError(f"BAGSCAN_LOG_FORMAT must be text or json, not {kind!r}")
    level = os.environ.get("BAGSCAN_LOG_LEVEL", "INFO").strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ValueError(f"BAGSCAN_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {level!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if kind == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
