"""The embedded MQTT broker (amqtt) for a one-box install, enforcing gateway.acl and device logins."""

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from gateway import acl

log = logging.getLogger(__name__)

# check(username, password) -> bool
Authenticator = Callable[[str, str], bool]


class DeviceAuthPlugin(BaseAuthPlugin):
    """Logins are checked against the device table (and the gateway's service password)."""

    @dataclass
    class Config:
        check: Any = field(default=None)

    async def authenticate(self, *, session: Session) -> bool:
        if not session.username or session.password is None:
            return False
        password = session.password
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        check: Authenticator = self.config.check
        return await asyncio.to_thread(check, session.username, password)


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


class EmbeddedBroker:
    """Runs amqtt on its own thread and event loop."""

    def __init__(self, port: int, check: Authenticator, host: str = "127.0.0.1"):
        self.port = port
        self.host = host
        self.check = check
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mqtt-broker", daemon=True
        )
        self._broker: Broker | None = None

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)

    async def _start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "gateway.broker.DeviceAuthPlugin": {"check": self.check},
                "gateway.broker.DeviceTopicPlugin": {},
            },
        }
        self._broker = Broker(config)
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
