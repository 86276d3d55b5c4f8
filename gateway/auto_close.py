"""The system's close of stale bags, run inside bagscan-gateway on a schedule (no outside cron).

Every CLOSE_EVERY_MINUTES one sweep (services.bags.close_stale) closes the bags still not
picked up CLOSE_AFTER_HOURS after they became awaiting_pickup, by the gateway's clock.
Several instances may sweep at once: the candidates are locked with SKIP LOCKED on
PostgreSQL, and closing is a move the lifecycle refuses twice.
"""

import logging
import threading

from flask import Flask
from sqlalchemy.exc import OperationalError

from gateway import clock, db
from gateway.services import bags

log = logging.getLogger(__name__)


def sweep(app: Flask) -> list[str]:
    """One sweep in its own transaction; the numbers of the bags it closed."""
    with db.transaction(app) as session:
        closed = bags.close_stale(session, clock.now())
    if closed:
        log.info("auto-close: closed %d bags: %s", len(closed), ", ".join(closed))
    return closed


class AutoClose:
    """A daemon thread sweeping every CLOSE_EVERY_MINUTES until stop()."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.every_s = 60 * float(app.config.get("CLOSE_EVERY_MINUTES") or 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auto-close", daemon=True)

    def start(self) -> None:
        if self.every_s <= 0:
            log.info("auto-close: off (CLOSE_EVERY_MINUTES is 0)")
            return
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        log.info(
            "auto-close: every %g min, bags awaiting pickup for %s h",
            self.every_s / 60,
            self.app.config["CLOSE_AFTER_HOURS"],
        )
        # A sweep at start too: a gateway back after a long stop closes what is due at once.
        while True:
            try:
                sweep(self.app)
            except OperationalError as err:  # the database away for a while: the next sweep
                log.warning("auto-close: sweep failed, retried in %g s: %s", self.every_s, err)
            except Exception:
                log.exception("auto-close: sweep failed")
            if self._stop.wait(self.every_s):
                return
