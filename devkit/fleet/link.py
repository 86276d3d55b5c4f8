"""The fleet's network: a TCP relay between the handhelds and the broker, cut for an outage."""

import asyncio
import threading


class Link:
    """A TCP relay in front of the broker: every handheld's MQTT connection runs through it, so
    an outage (Wi-Fi lost at the seller) cuts every connection and refuses new ones."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.up = True
        self.port = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link", daemon=True)

    def start(self) -> "Link":
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = asyncio.all_tasks(loop)
        if tasks:  # aborted transports end their pipes; cancel only what still hangs
            _, hanging = loop.run_until_complete(asyncio.wait(tasks, timeout=2))
            for task in hanging:
                task.cancel()
            if hanging:
                loop.run_until_complete(asyncio.wait(hanging))
        loop.run_until_complete(server.wait_closed())
        loop.close()

    async def _serve(self, reader, writer) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        self.connections += 1
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass
        finally:
            self.connections -= 1
            self._writers -= {writer, up_writer}

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def set_up(self, up: bool) -> None:
        def apply() -> None:
            self.up = up
            if not up:
                for writer in list(self._writers):
                    writer.transport.abort()

        self._loop.call_soon_threadsafe(apply)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
