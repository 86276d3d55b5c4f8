"""Power-cut soak of the whole handheld (devkit/handheld_powercut.py): SIGKILL the firmware at
random moments while scanning; every confirmed scan must be in the journal exactly once.

    .venv/bin/python bench/firmware_powercut.py --kills 200 [--seed 7]
(tests/firmware/test_handheld_powercut.py runs 30; BAGSCAN_POWERCUTS=200 runs more.)
The seed is printed first, so a failing run can be repeated with --seed.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from devkit.handheld import DEFAULT_HEAP
from devkit.handheld_powercut import soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10000)
    parser.add_argument("--heap", default=DEFAULT_HEAP, help="MicroPython heap, e.g. 100K")
    args = parser.parse_args()
    print(f"firmware_powercut: seed {args.seed}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = soak(Path(tmp) / "flash", args.kills, args.seed, args.heap)
    summary = {
        "seed": args.seed,
        "kills": result["kills"],
        "confirmed": len(result["confirmed"]),
        "records": len(result["journal"]),
        "seconds": result["seconds"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
