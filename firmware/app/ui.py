# What the user sees and hears: the screen, a beep pattern, and the refusal code behind it.
# Short texts fit the 16-column OLED.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython (the build test reads the texts)

    def const(x):
        return x


# Screen text of each refusal code, keyed by the code (protocol/rules.py CODES: the bag rules',
# then the handheld's own); the code itself goes to the control channel. One string, not a
# dict: 22 pairs as a dict cost ~2 KB of heap.
_REASONS = const(
    "|BAG_FULL:Bag full 300|OVERWEIGHT:Over 50 kg|OVERSIZE:Bag too big|DUPLICATE:Already in bag"
    "|IN_OTHER_BAG:In other bag|NOT_RTS:Not RTS|CANCELLED:Cancelled"
    "|ALREADY_RECEIVED:Already received|SEA_BIG_ITEM:Sea big item|FM49_MIX:FM-49 mixing"
    "|HUB_NOT_BAGGABLE:Hub not bagged|STORE_NOT_LINKED:Store not linked"
    "|BAD_BARCODE:Bad barcode|NO_PARCELS:Bag is empty|NO_WEIGHT:Weigh bag first"
    "|BAG_RANGE_USED:No bag numbers|JOURNAL_FULL:Flash full!|UNKNOWN_DRIVER:Unknown badge"
    "|WRONG_PIN:Wrong PIN|NO_BAGS:No bags scanned|TOO_MANY_BAGS:Handover full"
    "|NO_STORE:No store linked|ARRIVAL_EXCEPTION:Weight differs|NOT_A_BAG:Not a bag label"
    "|BAG_OPEN:Bag still open|BAG_SCANNED:Scanned already|UNKNOWN_BAG:Unknown bag|PIN_LOCKED:PIN locked|"
)


def reason(code):
    """The screen text for a refusal code (the code itself if it has none)."""
    at = _REASONS.find("|" + code + ":")
    if at < 0:
        return code
    at += len(code) + 2
    return _REASONS[at : _REASONS.find("|", at)]


class Ui:
    def __init__(self, board):
        self.board = board

    def show(self, lines, beep=None, code=None):
        self.board.display.show(lines)
        self.board.report(beep, code)  # first: a beep that fails cannot hide the outcome
        if beep:
            self.board.beep(beep)

    def refuse(self, title, code, detail=""):
        self.show((title, "", reason(code), detail), "error", code)
