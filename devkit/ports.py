"""TCP ports on 127.0.0.1: a free one for a service of a test or a tool, and waiting for one."""

import random
import socket
import time
from collections import deque

# Below Linux's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default): a port
# the OS handed out there could become the local end of any outgoing connection (a handheld's,
# the broker's) before the service that was to listen on it starts; under a loaded suite CI
# saw a gateway's HTTP port taken so.
_PORTS = range(20_000, 32_768)
_GIVEN: deque[int] = deque(maxlen=1000)  # handed out lately: two services of a test never share


def free_port() -> int:
    """A port nothing listens on now, outside the range outgoing connections take theirs
    from (another process may still take it later)."""
    for _ in range(200):
        port = random.choice(_PORTS)
        if port not in _GIVEN and port_free(port):
            _GIVEN.append(port)
            return port
    raise OSError(f"no free port in {_PORTS.start}-{_PORTS.stop - 1}")


def port_free(port: int) -> bool:
    """True when `port` can be bound on 127.0.0.1 and on all interfaces (a wanted fixed port)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")
