# Bag limits, refusal codes and the ordered table of the bag rules: the one definition, run by
# the handheld (firmware/app/bagging.py) and by the gateway's re-check (gateway/domain/
# bag_rules.py). Numbers from the seller manual (docs/domain.md, "Limits of one bag").
# Plain MicroPython/CPython-common code: the gateway imports it as protocol.rules.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython (gateway)

    def const(x):
        return x


MAX_PARCELS = const(300)  # "at most 300 parcels"
MAX_WEIGHT_G = const(50000)  # "at most 50 kg"; 50.00 kg is allowed, 50.01 kg is not
MAX_SIDE_CM = const(120)  # "each side < 120 cm"
MAX_SIDES_SUM_CM = const(180)  # "the three sides together <= 180 cm"

# Refusal codes: the device shows them, the control channel reports them, the gateway re-checks
# the bag rules'. A code is also the key of its screen text (firmware/app/ui.py).
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
# The handheld's own: a scan, a key or the flash it refuses, which never reaches the gateway.
BAD_BARCODE = "BAD_BARCODE"  # unreadable, or a DIM:/DRV:/PIN: code where it has no use
NO_PARCELS = "NO_PARCELS"  # closing an empty bag
NO_WEIGHT = "NO_WEIGHT"  # closing or receiving a bag that is not on the scale
BAG_RANGE_USED = "BAG_RANGE_USED"  # every bag number of the device's range is used
JOURNAL_FULL = "JOURNAL_FULL"  # the flash is full: nothing is confirmed until a sync
UNKNOWN_DRIVER = "UNKNOWN_DRIVER"  # a badge no driver of the config has
WRONG_PIN = "WRONG_PIN"
NO_BAGS = "NO_BAGS"  # a handover without bags
TOO_MANY_BAGS = "TOO_MANY_BAGS"  # a handover lists at most 100 bags (one journal frame)
NO_STORE = "NO_STORE"  # a handover with no linked store to hand over for
ARRIVAL_EXCEPTION = "ARRIVAL_EXCEPTION"  # the hub's weight differs from the bagging weight
# Courier pickup (firmware/app/pickup.py): only real bags count (docs/firmware.md, "Courier
# pickup"), and wrong PINs lock sign-in for a while.
NOT_A_BAG = "NOT_A_BAG"  # not a bag number, or one of this handheld's it has not opened yet
BAG_OPEN = "BAG_OPEN"  # the bag is still open on this handheld
BAG_SCANNED = "BAG_SCANNED"  # the bag is in this pickup already (DUPLICATE says "in bag")
# Counted with a warning: neither this handheld's bag nor in its config's list of the account's
# bags awaiting pickup; the gateway decides, and the receipt names a bag it refuses.
UNKNOWN_BAG = "UNKNOWN_BAG"
PIN_LOCKED = "PIN_LOCKED"  # too many wrong PINs in a row: sign-in waits, longer each time

# Only channels to the Shenzhen and Yiwu sorting centres may be bagged (manual FAQ 10).
BAGGABLE_HUBS = ("SZ", "YW")
FM49 = "FM-49"

# The bag rules, asked in this order: the first that refuses gives the code. Facts about the
# parcel itself come before the bag's limits, so a seller sees the cause that a retry won't
# fix. Each entry is the code, which is also the key of its screen text (firmware/app/ui.py);
# beside it, the facts refusal() reads for it. Codes only, not (code, facts) pairs: the
# handheld keeps this module in its heap, where the pairs would cost 0.7 KB.
RULES = (
    DUPLICATE,  # twice
    IN_OTHER_BAG,  # elsewhere
    ALREADY_RECEIVED,  # facts: status
    CANCELLED,  # facts: status
    NOT_RTS,  # facts: status; settings: unknown_parcel
    STORE_NOT_LINKED,  # facts: seller; settings: stores
    HUB_NOT_BAGGABLE,  # facts: hub; settings: baggable_hubs
    SEA_BIG_ITEM,  # facts: big
    FM49_MIX,  # facts: hub; fm49, other
    BAG_FULL,  # n
    OVERWEIGHT,  # grams
    OVERSIZE,  # dims
)

# Every code a handheld may show: the bag rules', then its own.
CODES = RULES + (
    BAD_BARCODE,
    NO_PARCELS,
    NO_WEIGHT,
    BAG_RANGE_USED,
    JOURNAL_FULL,
    UNKNOWN_DRIVER,
    WRONG_PIN,
    NO_BAGS,
    TOO_MANY_BAGS,
    NO_STORE,
    ARRIVAL_EXCEPTION,
    NOT_A_BAG,
    BAG_OPEN,
    BAG_SCANNED,
    UNKNOWN_BAG,
    PIN_LOCKED,
)


def refusal(twice, elsewhere, facts, settings, n, fm49, other, grams, dims, after=None):
    """The code of the first rule of RULES that refuses adding a parcel to a bag, or None.

    twice: the parcel is in this bag already; elsewhere: it is in another bag. facts: the
    parcel's (status, hub, seller, big), as a parcel entry of the config message has them
    (protocol/config_schema.py); None when it is unknown, and then only unknown_parcel speaks
    of it ("not RTS, or data error"; by default the gateway decides). settings: the device's,
    as the config message gives them. n, fm49, other: the bag's parcels, and how many of them
    are bound for FM-49 and for other hubs. grams: the bag's weight, None if not weighed;
    dims: its measured sides, None for a preset. after: a code of RULES, to ask only the rules
    after it (the gateway lists every refusal).
    The handheld calls it at every scan: it allocates nothing.
    """
    status = hub = seller = big = None
    if facts is not None:
        status, hub, seller, big = facts
    for code in RULES:
        if after is not None:
            if code == after:
                after = None
            continue
        if code == DUPLICATE:
            refused = twice
        elif code == IN_OTHER_BAG:  # status "bagged": in a bag of another handheld (a delta)
            refused = elsewhere or status == "bagged"
        elif code == ALREADY_RECEIVED:
            refused = status == "received"
        elif code == CANCELLED:
            refused = status == "cancelled"
        elif code == NOT_RTS:  # "not RTS, or data error": pending, or a status not known
            if facts is None:
                refused = settings.get("unknown_parcel") == "refuse"
            else:
                refused = status not in ("rts", "cancelled", "received")
        elif code == STORE_NOT_LINKED:
            stores = settings.get("stores")  # None: not configured yet, the gateway re-checks
            refused = facts is not None and stores is not None
            for s in stores or ():
                if (s if isinstance(s, str) else s[0]) == seller:  # "<id>" or ["<id>", "<name>"]
                    refused = False
        elif code == HUB_NOT_BAGGABLE:
            refused = facts is not None and hub not in settings.get("baggable_hubs", BAGGABLE_HUBS)
        elif code == SEA_BIG_ITEM:
            refused = big
        elif code == FM49_MIX:  # an unknown parcel counts for neither side
            refused = facts is not None and (other if hub == FM49 else fm49) > 0
        elif code == BAG_FULL:
            refused = n >= MAX_PARCELS
        elif code == OVERWEIGHT:
            refused = grams is not None and not weight_ok(grams)
        elif code == OVERSIZE:
            refused = dims is not None and not size_ok(dims)
        else:
            raise ValueError(code)  # a rule of RULES without its test here
        if refused:
            return code
    return None


def weight_ok(grams):
    return grams <= MAX_WEIGHT_G


def size_ok(dims):
    for side in dims:
        if side >= MAX_SIDE_CM:
            return False
    return sum(dims) <= MAX_SIDES_SUM_CM
