"""tools/provision: register a handheld with a gateway and write the config tools/flash puts on
it (docs/tools.md)."""

import argparse
import ipaddress
import json
import os
import sys
from pathlib import Path

from devkit import gateway_api


class ProvisionError(Exception):
    def __init__(self, message: str, exists: bool = False):
        super().__init__(message)
        self.exists = exists  # the device id is registered already


def register(
    gateway: str,
    token: str,
    device_id: str,
    replace: bool = False,
    timeout: float = 30,
    **binding: object,
) -> dict:
    """POST /api/devices: the device's MQTT credentials, the broker and its bag-number range.

    An existing id is refused (DEVICE_EXISTS) unless replace: then it gets a new password
    (the old one stops working) and keeps its range. binding: role, account_id,
    pickup_address_id (docs/api.md)."""
    body = {"device_id": device_id, **binding}
    if replace:
        body["replace"] = True
    try:
        status, answer = gateway_api.call(gateway, token, "POST", "/api/devices", body, timeout)
    except OSError as err:
        raise ProvisionError(f"cannot reach the gateway at {gateway}: {err}") from None
    if status != 201:
        error = answer.get("error") or {}
        detail = f"{error.get('code')}: {error.get('message')}"
        raise ProvisionError(
            f"the gateway refused {device_id!r} ({status} {detail})",
            exists=status == 409 and error.get("code") == "DEVICE_EXISTS",
        )
    return answer


def parse_wifi(spec: str) -> dict:
    ssid, sep, password = spec.partition(":")
    if not ssid or not sep:
        raise ProvisionError(f"--wifi takes SSID:PASSWORD, got {spec!r}")
    if len(ssid) > 32 or (password and not 8 <= len(password) <= 63):
        raise ProvisionError(f"--wifi {ssid!r}: SSID <= 32 bytes, WPA2 password 8-63 characters")
    return {"ssid": ssid, "password": password}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def device_config(
    answer: dict,
    wifi: list[dict],
    broker_host: str | None = None,
    broker_port: int | None = None,
    ca: Path | None = None,
    tls: bool = False,
) -> dict:
    """The config in the shape the firmware reads at boot (app.boot)."""
    mqtt = dict(answer["mqtt"])
    if broker_host:
        mqtt["host"] = broker_host
    elif is_loopback(mqtt["host"]):
        raise ProvisionError(
            f"the gateway hands out the broker address {mqtt['host']}, which a handheld cannot "
            "reach: pass --broker-host (or set BAGSCAN_DEVICE_MQTT_HOST on the gateway)"
        )
    if broker_port:
        mqtt["port"] = broker_port
    mqtt["tls"] = bool(mqtt.get("tls") or tls or ca)
    mqtt["ca"] = str(ca.resolve()) if ca else None
    return {
        "device_id": answer["device_id"],
        "mqtt": mqtt,
        "bag_range": answer["bag_range"],
        "wifi": wifi,
    }


def write_secret(path: Path, data: str) -> None:
    """Write with mode 0600 from the start: the file holds the device's password."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/provision", description=__doc__)
    parser.add_argument("--gateway", required=True, help="gateway base URL")
    parser.add_argument("--token", default=os.environ.get("BAGSCAN_API_TOKEN"),
                        help="the gateway's API token (default: $BAGSCAN_API_TOKEN)")  # fmt: skip
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--out", required=True, type=Path, help="config file to write")
    parser.add_argument("--wifi", action="append", default=[], metavar="SSID:PASSWORD")
    parser.add_argument("--broker-host", help="broker address as the handheld reaches it")
    parser.add_argument("--broker-port", type=int)
    parser.add_argument("--ca", type=Path, help="CA certificate (PEM/DER) of the broker: TLS")
    parser.add_argument("--tls", action="store_true", help="TLS without pinning a CA")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="re-provision an existing id: new password, same bag range",
    )
    parser.add_argument("--role", choices=("seller", "hub"), help="where the handheld works")
    parser.add_argument("--account-id", type=int, help="the seller account it bags for")
    parser.add_argument("--pickup-address-id", type=int, help="that account's pickup address")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("--token (or BAGSCAN_API_TOKEN) is required")
    try:
        wifi = [parse_wifi(spec) for spec in args.wifi]
        if args.ca and not args.ca.is_file():
            raise ProvisionError(f"--ca {args.ca}: no such file")
        binding = {
            key: value
            for key in ("role", "account_id", "pickup_address_id")
            if (value := getattr(args, key)) is not None
        }
        answer = register(args.gateway, args.token, args.device_id, args.replace, **binding)
        cfg = device_config(answer, wifi, args.broker_host, args.broker_port, args.ca, args.tls)
    except ProvisionError as err:
        print(f"provision: {err}", file=sys.stderr)
        return 1
    write_secret(args.out, json.dumps(cfg, indent=1) + "\n")
    lo, hi = cfg["bag_range"]
    mqtt = cfg["mqtt"]
    print(
        f"provision: {cfg['device_id']} registered; bags {lo}-{hi}; broker "
        f"{mqtt['host']}:{mqtt['port']}{' TLS' if mqtt['tls'] else ''}; "
        f"{len(wifi)} Wi-Fi network(s); wrote {args.out} (keep it secret)"
    )
    if not wifi:
        print("provision: warning: no --wifi given; the handheld will not get online")
    return 0


if __name__ == "__main__":
    sys.exit(main())
