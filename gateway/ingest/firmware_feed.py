"""Firmware updates fed to the handhelds (issue 19, docs/ota.md): offers, chunks, confirmations.

A thread of the ingest process with its own MQTT connection, like the parcel lookup. It hears
the handhelds' statuses (the version each one runs) and their firmware requests, which ride
on the parcel requests' topics (protocol/ota.py): a handheld asks for each chunk, so the
handheld sets the pace and resumes from what it has staged after a broken link or a power
cut. While a handheld's update is under way the feed offers the release again when it has
not heard from it for NUDGE_S (a lost message, a reconnect, a switch waiting for a safe
moment); once its status names the release, it confirms it.
"""

import json
import logging
import struct
import threading
import time
import zlib
from urllib.parse import urlsplit

from flask import Flask

from gateway import db
from gateway.ingest import mqtt_client
from gateway.models import DeviceUpdate, FirmwareRelease, utcnow
from gateway.services import firmware
from protocol import ota, wire, wire_schema

log = logging.getLogger(__name__)

NUDGE_S = 5.0  # quiet this long while its update is under way: the handheld is offered again
_PROGRESS_EVERY = 8 * ota.CHUNK_BYTES  # fetched bytes written to the database this often


class FirmwareFeed:
    def __init__(self, app: Flask, url: str, client_id: str, share_group: str = "") -> None:
        self.app = app
        self.url = urlsplit(url)
        self.share_group = share_group
        self.client = mqtt_client.client(self.url, client_id)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # device -> the version its online status names
        self._heard: dict[str, float] = {}  # device -> monotonic time it was last answered
        # version -> the release's packed bundle, and its chunks' id (4 bytes of its sha256)
        self._packed: dict[str, tuple[bytes, bytes]] = {}
        self._stop = threading.Event()
        self._nudger = threading.Thread(target=self._nudge_loop, daemon=True)

    def start(self) -> None:
        mqtt_client.start(self.client, self.url)
        self._nudger.start()

    def stop(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.error("firmware feed: MQTT connect refused: %s", reason_code)
            return
        # A group of its own: one instance of it answers each handheld.
        group = self.share_group and self.share_group + "-fw"
        for kind in (wire.REQUEST, wire.STATUS):
            client.subscribe(mqtt_client.devices_topic(kind, group), 0)

    def _on_message(self, _client, _userdata, msg) -> None:
        parsed = wire_schema.parse_topic(msg.topic)
        if parsed is None:
            return
        device_id, kind = parsed
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        try:
            if kind == wire.STATUS:
                self._status(device_id, body)
            elif kind == wire.REQUEST and ota.is_request(msg.payload):
                self._request(device_id, body)
        except Exception:  # noqa: BLE001 - a failed read must not end paho's thread
            log.exception("firmware feed: %s: %s", device_id, kind)

    # --- what the handhelds say ---------------------------------------------------------

    def _status(self, device_id: str, status: dict) -> None:
        fw = status.get("fw")
        with self._lock:
            if status.get("online") and isinstance(fw, str):
                self._running[device_id] = fw
            else:
                self._running.pop(device_id, None)
                return
        self._nudge(device_id)

    def _request(self, device_id: str, body: dict) -> None:
        version, offset, event = body.get("fw"), body.get("offset"), body.get("status")
        with db.sessions(self.app)() as session:
            update = session.get(DeviceUpdate, device_id)
            if update is None or update.version != version or update.state in firmware.DONE:
                return
            self._heard[device_id] = time.monotonic()
            if isinstance(offset, int) and not isinstance(offset, bool):
                packed, ident = self._release(session, update.version)
                if not 0 <= offset < len(packed):
                    return
                self._send_chunk(device_id, packed, ident, offset)
                moved = offset - update.fetched >= _PROGRESS_EVERY
                if update.state != firmware.FETCHING or moved:
                    update.state, update.fetched = firmware.FETCHING, offset
                    update.updated_at = utcnow()
                    session.commit()
            elif event in ota.EVENTS and event != update.state:
                update.state, update.updated_at = event, utcnow()
                if event == ota.READY:
                    update.fetched = len(self._release(session, update.version)[0])
                session.commit()
                log.info("firmware feed: %s: %s %s", device_id, version, event)

    # --- what the feed sends --------------------------------------------------------------

    def _nudge(self, device_id: str) -> None:
        """Offer the handheld its release, or confirm it once its status names it."""
        with db.sessions(self.app)() as session:
            update = session.get(DeviceUpdate, device_id)
            if update is None or update.state not in firmware.OFFERING:
                return
            running = self._running.get(device_id)
            if running is None:
                return
            self._heard[device_id] = time.monotonic()
            topic = wire.topic(device_id, wire.PARCEL)
            if running == update.version:
                if update.state != firmware.TRIAL_RUNNING:
                    update.state, update.updated_at = firmware.TRIAL_RUNNING, utcnow()
                    session.commit()
                self.client.publish(topic, bytes([ota.CONFIRM]) + update.version.encode(), 0)
                return
            release = session.get(FirmwareRelease, update.version)
            if release is None:
                return
            offer = {"fw": release.version, "size": release.size, "digest": release.sha256}
            offer["sig"] = release.signature
            payload = bytes([ota.OFFER]) + json.dumps(offer, separators=(",", ":")).encode()
            self.client.publish(topic, payload, 0)

    def _send_chunk(self, device_id: str, packed: bytes, ident: bytes, offset: int) -> None:
        data = packed[offset : offset + ota.CHUNK_BYTES]
        head = bytes([ota.CHUNK]) + ident + struct.pack(">II", offset, zlib.crc32(data))
        self.client.publish(wire.topic(device_id, wire.PARCEL), head + data, 0)

    def _nudge_loop(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            with self._lock:
                quiet = [d for d in self._running if now - self._heard.get(d, 0.0) >= NUDGE_S]
            for device_id in quiet:
                try:
                    self._nudge(device_id)
                except Exception:  # noqa: BLE001 - the next round tries again
                    log.exception("firmware feed: nudging %s", device_id)

    # --- releases -----------------------------------------------------------------------

    def _release(self, session, version: str) -> tuple[bytes, bytes]:
        cached = self._packed.get(version)
        if cached is None:
            release = session.get(FirmwareRelease, version)
            if release is None:
                return b"", b""
            cached = self._packed[version] = (release.packed, bytes.fromhex(release.sha256[:8]))
        return cached


def start(app: Flask, url: str, client_id: str, share_group: str = "") -> FirmwareFeed:
    feed = FirmwareFeed(app, url, client_id, share_group)
    feed.start()
    return feed
