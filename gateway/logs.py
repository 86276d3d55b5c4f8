"""Logging for the gateway's processes: one format and level (BAGSCAN_LOG_LEVEL) for all."""

import logging
import os


def setup() -> None:
    logging.basicConfig(
        level=os.environ.get("BAGSCAN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
