# The seller's copy at the door (docs/protocol.md, "The door receipt"): after a handover the
# handheld shows a QR code holding <receipt URL>/R/<receipt id>/<signature prefix>, which the
# gateway's page /r/... (gateway/web/admin/receipts.py) checks against the receipt it stored.
# The receipt id is the first 16 hex of sha256 over the signed handover message, the
# signature prefix the first 16 hex of the courier's HMAC over it: both known to the handheld
# before it syncs, and 64 bits of HMAC that nobody without the courier's key can forge.
# Uppercase, so the whole text is in the QR alphanumeric set (firmware/app/door_receipt.py,
# which builds this text the same way without loading this module).
ID_HEX = 16  # gateway/domain/receipts.py Receipt.receipt_id
SIG_HEX = 16
PATH = "/R/"
# The QR code of the door screen holds 77 alphanumeric characters (version 3-L): the base URL
# leaves room for PATH, the id, "/" and the signature prefix.
MAX_BASE_URL = 77 - len(PATH) - ID_HEX - 1 - SIG_HEX
# The QR code's alphanumeric set (ISO/IEC 18004 Table 5), which firmware/app/door_receipt.py
# encodes; tests/firmware/test_door_receipt.py checks the two agree.
QR_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def door_text(base_url, receipt_id, signature):
    """What the door screen's QR code holds, or None when the base URL does not fit it."""
    base = base_url.rstrip("/").upper()
    if not base or len(base) > MAX_BASE_URL:
        return None
    for ch in base:
        if QR_ALPHANUMERIC.find(ch) < 0:
            return None
    return base + PATH + (receipt_id[:ID_HEX] + "/" + signature[:SIG_HEX]).upper()
