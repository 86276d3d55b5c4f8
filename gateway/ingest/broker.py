"""The embedded MQTT broker (amqtt) for a one-box install, enforcing gateway.ingest.acl and device logins.

amqtt 0.12.1 breaks promises of docs/protocol.md, found by probing the gateway (issue 21):
it deletes or resumes the session named by a CONNECT's client id before it checks the login,
so any connection (even a refused one) with the id `bagscan-gw-<instance>` took the gateway's
ingest session; on every connect it replays the retained messages of every topic filter anyone
subscribed to, to the new client, without the topic check; on a subscription it replays
retained messages without the topic check; and it publishes a client's last will without the
topic check. GuardedBroker replaces those steps:

- the login is checked first, and a refused CONNECT is answered and closed without looking at
  any session;
- a device's session is named by its username whatever client id it sends (Mosquitto's
  use_username_as_clientid on the device listener, deploy/mosquitto/bagscan.conf), so a device
  can take over only its own session, never the gateway's or another device's; the gateway's
  own ids are out of reach because device ids starting with acl.RESERVED_PREFIX never log in;
- a last will on a topic the login may not publish is refused at CONNECT;
- retained messages go only to a subscription that may receive them, and a resumed session
  gets what was queued for it, not other clients' retained messages (MQTT 3.1.1, 3.3.1.3).

It also does what Mosquitto does on a reload: a device whose credential was replaced or revoked
is disconnected (within RECHECK_S).

The overridden methods are amqtt's private ones; amqtt is pinned (pyproject.toml) and
tests/security/test_broker_acl.py runs the same suite against this broker and Mosquitto.
"""

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker, Server
from amqtt.contexts import Action
from amqtt.errors import AMQTTError
from amqtt.events import BrokerEvents
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseTopicPlugin
from amqtt.session import Session
from transitions import MachineError

from gateway.ingest import acl

log = logging.getLogger(__name__)

# check(username, password) -> a fingerprint of the credential that matched, or None when the
# login is refused; credentials() -> the fingerprint of every device's credential now.
Authenticator = Callable[[str, str], str | None]
Credentials = Callable[[], dict[str, str]]

RECHECK_S = 1.0  # how often live device connections are checked against the credentials


class DeviceTopicPlugin(BaseTopicPlugin):
    @dataclass
    class Config:
        pass

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        if session is None or topic is None or action is None:
            return False
        return acl.allowed(session.username, topic, str(action))


def _password(session: Session) -> str:
    password = session.password
    if isinstance(password, bytes):
        password = password.decode("utf-8", "replace")
    return password or ""


class GuardedBroker(Broker):
    """amqtt with logins checked before sessions are touched, and retained messages checked."""

    def __init__(self, config: dict[str, Any], check: Authenticator, credentials: Credentials):
        super().__init__(config)
        self._check = check
        self._credentials = credentials
        self._logged_in: dict[str, str] = {}  # device session -> fingerprint it logged in with
        self._recheck_task: asyncio.Task | None = None

    async def start(self) -> None:
        await super().start()
        self._recheck_task = asyncio.create_task(self._recheck_forever())

    async def shutdown(self) -> None:
        if self._recheck_task is not None:
            self._recheck_task.cancel()
        await super().shutdown()

    async def _initialize_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        remote_address: str,
        remote_port: int,
    ) -> tuple[BrokerProtocolHandler, Session]:
        handler, incoming = await BrokerProtocolHandler.init_from_connect(
            reader, writer, self.plugins_manager
        )
        username = incoming.username or ""
        fingerprint = None
        if username and incoming.password is not None:
            fingerprint = await asyncio.to_thread(self._check, username, _password(incoming))
        if fingerprint is not None and incoming.will_flag:
            # amqtt publishes a will without the topic check: a will on another device's
            # topic is refused at CONNECT, as Mosquitto does
            will_ok = await self._topic_filtering(
                incoming, topic=incoming.will_topic, action=Action.PUBLISH
            )
            fingerprint = fingerprint if will_ok else None
        if fingerprint is None:
            handler.attach(incoming, reader, writer)
            await handler.mqtt_connack_authorize(False)
            await writer.close()
            raise AMQTTError(f"login refused for {username!r} from {remote_address}:{remote_port}")
        if username != acl.GATEWAY_USER:
            incoming.client_id = username
            self._logged_in[username] = fingerprint
        client_id = incoming.client_id
        await self._close_live(client_id)  # [MQTT-3.1.4-2]: the same client again
        if incoming.clean_session or client_id not in self._sessions:
            await self._delete_session(client_id)
            incoming.parent = 0
            session = incoming
        else:  # resume the session with this connection's will and keep-alive
            session, _ = self._sessions[client_id]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain"):
                setattr(session, name, getattr(incoming, name))
            session.keep_alive = incoming.keep_alive
            session.parent = 1
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Server,
        listener_name: str,
    ) -> None:
        """amqtt's own, minus the login (checked above) and the replay of all retained messages."""
        while True:
            try:
                client_session.transitions.connect()
                break
            except (MachineError, ValueError):
                await asyncio.sleep(0.1)  # the old link of this session is still closing
        handler.attach(client_session, reader, writer)
        self._sessions[client_session.client_id] = (client_session, handler)
        await handler.mqtt_connack_authorize(True)
        await self.plugins_manager.fire_event(
            BrokerEvents.CLIENT_CONNECTED,
            client_id=client_session.client_id,
            client_session=client_session,
        )
        await handler.start()
        # QoS 1 messages queued while the session was offline (each passed the topic check
        # when it was queued)
        await self._publish_session_retained_messages(client_session)
        await self._client_message_loop(client_session, handler)

    async def _close_live(self, client_id: str) -> None:
        """Close the live link of a session, and wait until its message loop has let go."""
        session, handler = self._sessions.get(client_id, (None, None))
        if session is None or handler is None or not session.transitions.is_connected():
            return
        await handler.handle_connection_closed()
        for _ in range(100):
            if not session.transitions.is_connected():
                return
            await asyncio.sleep(0.02)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            tasks.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(
                        retained.topic, retained.data, min(qos, retained.qos or qos), retain=True
                    )
                )
            )
        if tasks:
            await asyncio.wait(tasks)

    async def _recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_S)
            try:
                await self._drop_stale_logins()
            except Exception:  # noqa: BLE001 - e.g. the database is away: next round
                log.exception("checking live MQTT logins")

    async def _drop_stale_logins(self) -> None:
        """Disconnect devices whose credential was replaced or revoked since they logged in."""
        if not self._logged_in:
            return
        current = await asyncio.to_thread(self._credentials)
        for username, fingerprint in list(self._logged_in.items()):
            if current.get(username) == fingerprint:
                continue
            del self._logged_in[username]
            log.info("device %s disconnected: its credential was replaced or revoked", username)
            await self._close_live(username)


class EmbeddedBroker:
    """Runs amqtt on its own thread and event loop."""

    def __init__(
        self, port: int, check: Authenticator, credentials: Credentials, host: str = "127.0.0.1"
    ):
        self.port = port
        self.host = host
        self.check = check
        self.credentials = credentials
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mqtt-broker", daemon=True
        )
        self._broker: GuardedBroker | None = None

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)

    async def _start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"gateway.ingest.broker.DeviceTopicPlugin": {}},
        }
        self._broker = GuardedBroker(config, self.check, self.credentials)
        await self._broker.start()

    def stop(self) -> None:
        if self._broker is not None:
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(timeout=10)
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.exception("broker shutdown")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
