"""Who may use which MQTT topic: one definition for the embedded broker and Mosquitto's ACL file.

A device (username = device id) publishes only its own events and status and reads only its
own acknowledgements and config; the gateway's service account reads and writes all of ours.
"""

from firmware.app import wire, wire_schema

GATEWAY_USER = "bagscan-gateway"
DEVICE_PUBLISHES = (wire.EVENTS, wire.STATUS)
DEVICE_READS = (wire.ACK, wire.CONFIG)


def allowed(username: str | None, topic: str, action: str) -> bool:
    """action is "publish", "subscribe" or "receive"."""
    if not username:
        return False
    if username == GATEWAY_USER:
        return topic.startswith(wire.ROOT) or topic.startswith("$share/")
    if not wire_schema.device_id_ok(username):  # refuses "+", "#" and "/" in a username
        return False
    parsed = wire_schema.parse_topic(topic)
    if parsed is None or parsed[0] != username:
        return False
    kinds = DEVICE_PUBLISHES if action == "publish" else DEVICE_READS
    return parsed[1] in kinds


def mosquitto_acl() -> str:
    """The same rules in Mosquitto's acl_file syntax (%u is the authenticated username)."""
    lines = [f"user {GATEWAY_USER}", f"topic readwrite {wire.ROOT}#", ""]
    for kind in DEVICE_PUBLISHES:
        lines.append(f"pattern write {wire.ROOT}%u/{kind}")
    for kind in DEVICE_READS:
        lines.append(f"pattern read {wire.ROOT}%u/{kind}")
    return "\n".join(lines) + "\n"
