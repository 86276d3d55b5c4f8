"""A release's signature, made by devkit/release.py with `cryptography` and checked by the
handheld's few lines (firmware/app/boot.py check: pow(s, 65537, n) and a compare) in
MicroPython: both sides agree, and the handheld's copies of protocol/ota.py's constants do."""

import hashlib
import re
import shutil

import pytest

from devkit import ROOT, release
from protocol import ota

BOOT = ROOT / "firmware" / "app" / "boot.py"
PACKED = ota.MAGIC + b"0.3.0\n" + b"0 app/\n5 app/x\nhello"


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "release.key"
    release.make_key(path)
    return path


def handheld_check(run_mpy, tmp_path, packed: bytes, signature: bytes, public_file) -> str:
    """What the handheld's check says of a staged release: "None" (accepted) or the event."""
    root = tmp_path / "flash"
    shutil.rmtree(root, ignore_errors=True)
    (root / "ota").mkdir(parents=True)
    (root / "ota" / "stage.bin").write_bytes(packed)
    shutil.copyfile(public_file, root / "release.pub")  # the running code's key
    offer = {"digest": hashlib.sha256(packed).hexdigest(), "sig": signature.hex()}
    proc = run_mpy(
        "from app import boot\n"
        f"boot.__file__ = {str(root / 'app' / 'boot.py')!r}\n"
        f"print('CHECK', boot.check({str(root) + '/'!r}, {offer!r}))\n",
        heap="1M",  # app/boot.py and what it imports, compiled from source here
    )
    return proc.stdout.split("CHECK ", 1)[1].strip()


def test_a_signed_release_is_accepted_by_the_handheld_and_by_python(run_mpy, key, tmp_path):
    signature = release.sign(PACKED, release.load_key(key))
    public = release.public_path(key)
    assert handheld_check(run_mpy, tmp_path, PACKED, signature, public) == "None"
    assert release.verify(PACKED + signature, public) == "0.3.0"


def test_a_changed_byte_or_another_key_is_refused(run_mpy, key, tmp_path):
    signature = release.sign(PACKED, release.load_key(key))
    public = release.public_path(key)
    changed = PACKED[:-1] + b"!"
    assert handheld_check(run_mpy, tmp_path, changed, signature, public) == ota.BAD_SIGNATURE
    with pytest.raises(release.ReleaseError, match="signature"):
        release.verify(changed + signature, public)
    other = tmp_path / "other.key"
    release.make_key(other)
    other_public = release.public_path(other)
    assert handheld_check(run_mpy, tmp_path, PACKED, signature, other_public) == ota.BAD_SIGNATURE


def test_the_private_key_is_never_overwritten_and_only_its_owner_reads_it(key):
    assert key.stat().st_mode & 0o077 == 0
    with pytest.raises(release.ReleaseError, match="never overwritten"):
        release.make_key(key)


def test_the_handhelds_copies_of_the_update_constants_agree_with_protocol_ota():
    source = BOOT.read_text()

    def const(name):
        found = re.search(rf"^_{name} = const\(\s*(.+?),?\s*\)(  #.*)?$", source, re.M | re.S)
        assert found, name
        return eval(found.group(1))  # a literal: a number, text or bytes

    for name in ("OFFER", "CHUNK", "CONFIRM", "CHUNK_HEAD", "KEY_BYTES", "SHA256_INFO"):
        assert const(name) == getattr(ota, name), name
    for name in ("READY", "TRIAL_STARTING", "TRIAL_CONFIRMED", "HASH_MISMATCH"):
        assert const(name) == getattr(ota, name), name
    assert const("BAD_SIGNATURE") == ota.BAD_SIGNATURE
    assert const("ROLLED_BACK") == ota.ROLLED_BACK
    assert const("NO_ROMFS") == ota.NO_ROMFS
    assert const("MAGIC") == ota.MAGIC
