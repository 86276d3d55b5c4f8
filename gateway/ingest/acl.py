"""Who may use which MQTT topic: one definition for the embedded broker and Mosquitto's ACL file.

A device (username = device id) publishes only its own events, status and parcel requests and
reads only its own acknowledgements, config and answers to its requests; the gateway's service account reads and writes all of ours.
"""

from protocol import wire, wire_schema

GATEWAY_USER = "bagscan-gateway"
# The gateway's own MQTT names (its account, and the client ids bagscan-gw-<instance> and
# bagscan-pub-<instance>-<pid>) start with this. Brokers name a device's session by its
# username (use_username_as_clientid), so no device may be called so: it could take over one
# of the gateway's sessions (issue 21).
RESERVED_PREFIX = "bagscan-"
DEVICE_PUBLISHES = (wire.EVENTS, wire.STATUS, wire.REQUEST)
DEVICE_READS = (wire.ACK, wire.CONFIG, wire.PARCEL)


def device_login_ok(username: str) -> bool:
    """A username a device may log in with: a valid device id outside the gateway's names."""
    return wire_schema.device_id_ok(username) and not username.startswith(RESERVED_PREFIX)


def allowed(username: str | None, topic: str, action: str) -> bool:
    """action is "publish", "subscribe" or "receive"."""
    if not username:
        return False
    if username == GATEWAY_USER:
        return topic.startswith(wire.ROOT) or topic.startswith("$share/")
    if not device_login_ok(username):  # refuses "+", "#" and "/" in a username
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
