# Firmware updates over the air (issue 19, docs/ota.md): the release file's layout and the
# messages of a transfer, for the gateway and tools. The handheld's side is in
# firmware/app/boot.py, with these constants copied (a module of its own costs interned names
# the handheld cannot spare; tests/firmware/test_release_signature.py checks they agree).
#
# The messages ride on the topics of parcel requests, so a device needs no new subscription:
# device -> gateway on wire.REQUEST, a JSON object (a tracking number is never one):
#   {"fw": "<version>", "offset": <n>}    the chunk of the packed release at offset n, please
#   {"fw": "<version>", "status": "<e>"}  what the handheld did (EVENTS)
# gateway -> device on wire.PARCEL, binary, never starting with "{" as an answer does:
#   OFFER + JSON {"fw", "size" (bytes), "digest" (sha256 hex), "sig" (hex)}
#   CHUNK + id (first 4 bytes of the sha256) + offset (4, big-endian) + CRC-32 (4) + data
#   CONFIRM + version: the handheld's status names the version
OFFER = 0x55  # "U"
CHUNK = 0x43  # "C"
CONFIRM = 0x4B  # "K"
CHUNK_HEAD = 13
# 4 KiB: one LittleFS block per write; a chunk message (4 KiB + 13 + topic) goes to the
# handheld's spool file (it is over its 256-byte receive buffer), well under wire.MAX_MESSAGE.
CHUNK_BYTES = 4096
# What the handheld reports, in the order an update goes (the rollout page shows them).
READY = "ready"  # fetched, checked and in its slot; waits for a safe moment
TRIAL_STARTING = "trial_starting"  # resetting into the new version
TRIAL_CONFIRMED = "trial_confirmed"  # the new version booted, reached the gateway, is kept
HASH_MISMATCH = "hash_mismatch"  # refused: the fetched file is not the offered one
BAD_SIGNATURE = "bad_signature"  # refused: not signed by the key the handheld carries
ROLLED_BACK = "rolled_back"  # the new version did not confirm within 3 boots: dropped
NO_ROMFS = "no_romfs"  # refused: no ROMFS partition that holds its image
EVENTS = (
    READY,
    TRIAL_STARTING,
    TRIAL_CONFIRMED,
    HASH_MISMATCH,
    BAD_SIGNATURE,
    ROLLED_BACK,
    NO_ROMFS,
)

# The release file: MAGIC, "<version>\n", the ROMFS image of the bundle (devkit/romfs.py; what
# the handheld writes to its ROMFS partition, docs/ota.md), then the signature. Layout 1 (the
# bundle's files, listed) ran from the filesystem: its releases are refused at upload.
MAGIC = b"bagscan-release 2\n"
# RSA-2048, PKCS#1 v1.5 with SHA-256 (RFC 8017 section 8.2): the DigestInfo before the hash.
KEY_BYTES = 256
EXPONENT = 65537
SHA256_INFO = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"
_VERSION_BYTES = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-"


def split_release(data):
    """(version, packed bundle, signature) of a release file, or None if it is not one."""
    packed = data[:-KEY_BYTES]
    end = packed.find(b"\n", len(MAGIC))
    if len(data) <= KEY_BYTES or not packed.startswith(MAGIC) or end < 0:
        return None
    version = packed[len(MAGIC) : end]
    if not 0 < len(version) <= 32 or any(b not in _VERSION_BYTES for b in version):
        return None
    return version.decode(), packed, data[-KEY_BYTES:]


def is_request(payload):
    """A firmware request on wire.REQUEST (bytes): a JSON object, never a tracking number."""
    return payload[:1] == b"{"
