"""The gateway's MQTT connections (ingest, parcel lookup, HTTP workers' publisher): one way to
make a paho client from BAGSCAN_MQTT_URL and start it.

The URL's user and password are percent-decoded (a password may hold "@" or ":"); mqtts
uses the system's CA store.
"""

import socket
from urllib.parse import SplitResult, unquote

import paho.mqtt.client as mqtt

from protocol import wire


def client(url: SplitResult, client_id: str, clean_session: bool = True, **options) -> mqtt.Client:
    """A paho 2.x client for url (MQTT 3.1.1), logged in and with TLS as the URL says;
    options go to mqtt.Client (manual_ack, ...)."""
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=clean_session,
        **options,
    )
    if url.username:
        c.username_pw_set(unquote(url.username), unquote(url.password or ""))
    if url.scheme == "mqtts":
        c.tls_set()
    c.on_socket_open = no_delay
    c.reconnect_delay_set(1, 30)
    return c


def devices_topic(kind: str, share_group: str = "") -> str:
    """The filter for every device's `kind` topic; with a share group, a shared subscription
    (MQTT 5 `$share`, which Mosquitto and EMQX give 3.1.1 clients too): one member of the
    group gets each message."""
    name = wire.topic("+", kind)
    return f"$share/{share_group}/{name}" if share_group else name


def start(c: mqtt.Client, url: SplitResult) -> None:
    """Connect in the background and keep reconnecting (paho's network thread)."""
    default_port = 8883 if url.scheme == "mqtts" else 1883
    c.connect_async(url.hostname or "127.0.0.1", url.port or default_port)
    c.loop_start()


def no_delay(_client, _userdata, sock) -> None:
    """Send small packets at once. With Nagle's algorithm an ack published right after another
    small write waits for the broker's delayed TCP ACK: 40 ms on Linux, the median latency
    before this was set (docs/benchmarks.md)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. websockets)
        pass
