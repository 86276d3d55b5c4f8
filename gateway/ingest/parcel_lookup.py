"""Parcel requests answered: a handheld asks about a parcel its cache lacks (issue 16).

A handheld that scans a parcel missing from its cache while online publishes the tracking
number on its REQUEST topic and waits for the answer before it answers the scan
(firmware/app/sync.py request). This thread of the ingest process (gateway.serve) answers on
the device's PARCEL topic with the parcel's config entry, as the device's config would carry
it, or null when the gateway does not know the parcel either (docs/protocol.md, "Parcel
requests"). A parcel of a store not linked to the device's account is answered with an empty
seller: the handheld refuses it STORE_NOT_LINKED without learning another seller's id.

Both ways at QoS 0: a request or answer lost costs the scan the gateway's answer (the handheld
waits 1 s, then follows unknown_parcel), and nothing stale is queued for a device that was away.
The answer takes two primary-key reads; the bench (bench/parcel_lookup.py) measures its p99.
"""

import json
import logging
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy.orm import Session

from gateway import db
from gateway.ingest import mqtt_client
from gateway.models import Device, Parcel, Store
from protocol import config_schema, ota, wire, wire_schema

log = logging.getLogger(__name__)


def answer(session: Session, device_id: str, tracking_no: str) -> bytes | None:
    """The PARCEL message for a device's request about tracking_no; None for a device the
    gateway does not know (nothing is sent)."""
    device = session.get(Device, device_id)
    if device is None:
        return None
    account_id = device.account_id
    entry = None
    parcel = session.get(Parcel, tracking_no)
    if parcel is not None:
        store = session.get(Store, parcel.seller_id)
        linked = account_id is not None and store is not None and store.account_id == account_id
        seller = parcel.seller_id if linked else ""
        entry = config_schema.parcel_entry(parcel.status, parcel.hub, seller, parcel.sea_big_item)
    msg = {"v": wire.VERSION, "parcels": {tracking_no: entry}}
    return json.dumps(msg, separators=(",", ":")).encode()


class ParcelLookup:
    """Its own MQTT connection (clean session, QoS 0): the ingest's connection batches
    messages for the store process, where a request would wait for a batch."""

    def __init__(self, app: Flask, url: str, client_id: str, share_group: str = "") -> None:
        self.app = app
        self.url = urlsplit(url)
        self.share_group = share_group
        self.client = mqtt_client.client(self.url, client_id)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def start(self) -> None:
        mqtt_client.start(self.client, self.url)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.error("parcel lookup: MQTT connect refused: %s", reason_code)
            return
        # one instance of a group answers each request
        client.subscribe(mqtt_client.devices_topic(wire.REQUEST, self.share_group), 0)

    def _on_message(self, client, _userdata, msg) -> None:
        """Answer on paho's network thread: two primary-key reads, well under a millisecond
        against the 300 ms bound, and no queue for a request to wait in."""
        if ota.is_request(msg.payload):  # the firmware feed's (gateway/ingest/firmware_feed.py)
            return
        try:
            parsed = wire_schema.parse_topic(msg.topic)
            tracking_no = msg.payload.decode("ascii")
        except (UnicodeDecodeError, ValueError):
            return
        if parsed is None or parsed[1] != wire.REQUEST or not wire.text_ok(tracking_no):
            return
        try:
            with db.sessions(self.app)() as session:
                reply = answer(session, parsed[0], tracking_no)
        except Exception:  # noqa: BLE001 - a failed read must not end the thread
            log.exception("parcel lookup: no answer for %s", parsed[0])
            return
        if reply is not None:
            client.publish(wire.topic(parsed[0], wire.PARCEL), reply, qos=0)


def start(app: Flask, url: str, client_id: str, share_group: str = "") -> ParcelLookup:
    lookup = ParcelLookup(app, url, client_id, share_group)
    lookup.start()
    return lookup
