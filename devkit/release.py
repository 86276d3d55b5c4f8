"""Firmware releases (issue 19, docs/ota.md): the release key, and the bundle packed and signed.

A release file is the ROMFS image of the bundle tools/flash builds, packed as protocol/ota.py
describes (its version first), followed by the 256-byte RSA-2048 PKCS#1 v1.5 signature of the
packed bytes' SHA-256. The image carries the public modulus as `release.pub` (hex), the key
the handheld checks the next release with. The private key lives at a path the operator chooses, never in
the repository: tools/release makes it and signs with it.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devkit import bundle, romfs
from protocol import ota

PUBLIC_FILE = "release.pub"  # in the code's root: the modulus, hex
_VERSION = re.compile(r'_FIRMWARE_VERSION = const\("([^"]+)"\)')


class ReleaseError(Exception):
    pass


def make_key(path: Path) -> Path:
    """A new RSA-2048 release key at path (PEM, owner-only), and its public file beside it
    (path + ".pub", what tools/flash ships). Refuses to overwrite a key."""
    if path.exists():
        raise ReleaseError(f"{path} exists: a release key is never overwritten")
    key = rsa.generate_private_key(public_exponent=ota.EXPONENT, key_size=8 * ota.KEY_BYTES)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_path(path)
    public.write_text(f"{key.public_key().public_numbers().n:x}\n")
    return public


def public_path(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def load_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        raise ReleaseError(f"cannot read the release key {path}: {err}") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != 8 * ota.KEY_BYTES:
        raise ReleaseError(f"{path} is not an RSA-2048 key")
    return key


def modulus(public_file: Path) -> int:
    return int(public_file.read_text().strip(), 16)


def firmware_version(firmware: Path = bundle.FIRMWARE) -> str:
    """The version the firmware reports in its status (app/main.py _FIRMWARE_VERSION)."""
    found = _VERSION.search((firmware / "app" / "main.py").read_text())
    if found is None:
        raise ReleaseError("no _FIRMWARE_VERSION in app/main.py")
    return found.group(1)


def pack(image: bytes, version: str) -> bytes:
    """A bundle's ROMFS image in the release layout (protocol/ota.py MAGIC)."""
    return ota.MAGIC + version.encode() + b"\n" + image


def sign(packed: bytes, key: rsa.RSAPrivateKey) -> bytes:
    return key.sign(packed, padding.PKCS1v15(), hashes.SHA256())


def build(
    key_path: Path,
    out: Path,
    target: str = "esp32",
    board: str = "esp32",
    firmware: Path = bundle.FIRMWARE,
) -> str:
    """Build the bundle, make its ROMFS image with the key's public file, pack and sign it
    into out; returns the version."""
    key = load_key(key_path)
    version = firmware_version(firmware)
    with tempfile.TemporaryDirectory() as tmp:
        build_dir = Path(tmp) / "build"
        # A private build folder: a variant's modules must not land in the shared build/.
        compiled = bundle.build(build_dir, target, board, firmware)
        n = key.public_key().public_numbers().n
        image = romfs.image(compiled, {PUBLIC_FILE: f"{n:x}\n".encode()})
    packed = pack(image, version)
    out.write_bytes(packed + sign(packed, key))
    return version


def parse(data: bytes) -> tuple[str, bytes, bytes]:
    """(version, packed bundle, signature) of a release file; raises ReleaseError."""
    parts = ota.split_release(data)
    if parts is None:
        raise ReleaseError("not a bagscan release file (or no valid version in it)")
    return parts


def verify(data: bytes, public_file: Path) -> str:
    """The version of a release file whose signature the public key accepts; raises
    ReleaseError. The handheld's own check is firmware/app/boot.py check."""
    version, packed, signature = parse(data)
    key = rsa.RSAPublicNumbers(ota.EXPONENT, modulus(public_file)).public_key()
    try:
        key.verify(signature, packed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ReleaseError("the signature does not match the release key") from None
    return version


def firmware_variant(into: Path, version: str, crash: bool = False, edits: tuple = ()) -> Path:
    """A copy of firmware/ in `into` that reports `version` and, with crash, raises at every
    boot; edits: (file, text, replacement), each text required. The releases of the update
    tests and bench (tests/firmware/test_handheld_ota.py)."""
    shutil.copytree(bundle.FIRMWARE, into, ignore=shutil.ignore_patterns("typings", "__py*"))
    edits = (("app/main.py", f'const("{firmware_version()}")', f'const("{version}")'), *edits)
    if crash:
        raising = 'def run():\n    raise RuntimeError("broken release")\n'
        edits = (*edits, ("app/main.py", "def run():\n", raising))
    for name, text, replacement in edits:
        path = into / name
        source = path.read_text()
        if text not in source:
            raise ReleaseError(f"{name} has no {text!r} to change")
        path.write_text(source.replace(text, replacement))
    return into


def install(code_root: Path, compiled: Path, public_file: Path | None) -> None:
    """Lay a compiled bundle out as tools/flash --romfs does on an ESP32 (the simulator's
    code on flash, devkit/handheld.py): main.py on the filesystem, the code and the release
    key's public file in the ROMFS partition, which code_root/romfs.PARTITION stands for."""
    code_root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(compiled / "main.py", code_root / "main.py")
    key = {PUBLIC_FILE: public_file.read_bytes()} if public_file is not None else None
    romfs.build(compiled, code_root / romfs.PARTITION, key, room=romfs.PARTITION_ROOM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/release", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    key = sub.add_parser("key", help="make a release key (and KEY.pub beside it)")
    key.add_argument("key", type=Path, help="where the private key goes: outside the repository")
    build_cmd = sub.add_parser("build", help="build the bundle and sign it into a release file")
    build_cmd.add_argument("--key", type=Path, required=True, help="the private release key")
    build_cmd.add_argument("--out", type=Path, required=True, help="the release file to write")
    build_cmd.add_argument(
        "--target", choices=("esp32", "host"), default="esp32", help="esp32, or host (simulator)"
    )
    check = sub.add_parser("verify", help="check a release file against a public key")
    check.add_argument("release", type=Path)
    check.add_argument("--public", type=Path, required=True, help="KEY.pub of tools/release key")
    args = parser.parse_args(argv)
    try:
        if args.command == "key":
            public = make_key(args.key)
            print(f"release: key {args.key} (keep it off the repository); public {public}")
        elif args.command == "build":
            board = "esp32" if args.target == "esp32" else "sim"
            version = build(args.key, args.out, args.target, board)
            print(f"release: {version} -> {args.out} ({args.out.stat().st_size} B)")
        else:
            print(f"release: {verify(args.release.read_bytes(), args.public)} signed by the key")
    except (ReleaseError, OSError) as err:
        print(f"release: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
