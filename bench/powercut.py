"""Power-cut soak for the firmware journal (devkit/journal_powercut.py): SIGKILL a MicroPython
writer at random moments; every confirmed record must survive, in order, exactly once.

    .venv/bin/python bench/powercut.py --kills 200 --backend lfs [--seed 7]
The seed is printed first, so a failing run can be repeated with --seed.
"""

import argparse
import json
import random

from devkit.journal_powercut import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--backend", choices=["posix", "lfs", "both"], default="both")
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    ap.add_argument("--max-wait", type=float, default=0.15, help="longest run before a kill (s)")
    args = ap.parse_args()
    print(f"powercut: seed {args.seed}", flush=True)
    backends = ["posix", "lfs"] if args.backend == "both" else [args.backend]
    for backend in backends:
        stats = run(args.kills, backend=backend, seed=args.seed, max_wait=args.max_wait)
        print(backend, json.dumps(stats))


if __name__ == "__main__":
    main()
