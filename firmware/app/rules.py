# Bag limits and refusal codes: the one definition, shared by the handheld and the gateway.
# Numbers from the seller manual (docs: ../shared/domain.md, "Limits of one bag").
# Plain MicroPython/CPython-common code: the gateway imports it as firmware.app.rules.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython (gateway)

    def const(x):
        return x


MAX_PARCELS = const(300)  # "at most 300 parcels"
MAX_WEIGHT_G = const(50000)  # "at most 50 kg"; 50.00 kg is allowed, 50.01 kg is not
MAX_SIDE_CM = const(120)  # "each side < 120 cm"
MAX_SIDES_SUM_CM = const(180)  # "the three sides together <= 180 cm"
MAX_BARCODE_LEN = const(64)

# Refusal codes: the device shows them, the control channel reports them, the gateway re-checks them.
BAG_FULL = "BAG_FULL"
OVERWEIGHT = "OVERWEIGHT"
OVERSIZE = "OVERSIZE"
DUPLICATE = "DUPLICATE"
IN_OTHER_BAG = "IN_OTHER_BAG"
NOT_RTS = "NOT_RTS"
CANCELLED = "CANCELLED"
ALREADY_RECEIVED = "ALREADY_RECEIVED"
SEA_BIG_ITEM = "SEA_BIG_ITEM"
FM49_MIX = "FM49_MIX"
HUB_NOT_BAGGABLE = "HUB_NOT_BAGGABLE"
STORE_NOT_LINKED = "STORE_NOT_LINKED"
BAD_BARCODE = "BAD_BARCODE"

CODES = (
    BAG_FULL,
    OVERWEIGHT,
    OVERSIZE,
    DUPLICATE,
    IN_OTHER_BAG,
    NOT_RTS,
    CANCELLED,
    ALREADY_RECEIVED,
    SEA_BIG_ITEM,
    FM49_MIX,
    HUB_NOT_BAGGABLE,
    STORE_NOT_LINKED,
    BAD_BARCODE,
)

# Only channels to the Shenzhen and Yiwu sorting centres may be bagged (manual FAQ 10).
BAGGABLE_HUBS = ("SZ", "YW")
FM49 = "FM-49"


def weight_ok(grams):
    return grams <= MAX_WEIGHT_G


def size_ok(sides_cm):
    for side in sides_cm:
        if side >= MAX_SIDE_CM:
            return False
    return sum(sides_cm) <= MAX_SIDES_SUM_CM
