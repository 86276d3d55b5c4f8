"""tools/sim fleet: N simulated handhelds (the real firmware on the MicroPython unix port) run a
scripted day from a scenario file against a gateway, with a live progress table; at the end
the gateway's bags (and handovers, receipts) must match what the scenario planned, exactly.

Scenario files: tools/scenarios/*.json, format in docs/tools.md ("Scenarios").
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from devkit import provision
from devkit.control import ControlError
from devkit.fleet.check import differences
from devkit.fleet.display import Display
from devkit.fleet.fleet import Fleet, GatewayError
from devkit.fleet.scenario import DEFAULT_SCENARIO, ScenarioError, load


def run(fleet: Fleet, display: Display | None = None) -> list[str]:
    """Start, run the day, check; always stops the handhelds. Returns the problems found."""
    try:
        fleet.start()
        if display:
            display.start()
        fleet.run_day()
        return differences(fleet)
    finally:
        if display:
            display.stop()
        fleet.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/sim fleet", description=__doc__)
    parser.add_argument("--gateway", required=True, help="gateway base URL")
    parser.add_argument("--token", default=os.environ.get("BAGSCAN_API_TOKEN"))
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--devices", type=int, help="fleet size (default: the scenario's)")
    parser.add_argument("--heap", help="MicroPython heap per handheld, e.g. 128K")
    parser.add_argument("--state-dir", type=Path, help="the handhelds' flash (default: a temp dir)")
    parser.add_argument("--plain", action="store_true", help="progress lines, not a table")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("--token (or BAGSCAN_API_TOKEN) is required")
    state = args.state_dir or Path(tempfile.gettempdir()) / "bagscan-fleet"
    try:
        fleet = Fleet(args.gateway, args.token, load(args.scenario), state, args.devices, args.heap)
    except ScenarioError as err:
        print(f"fleet: {err}", file=sys.stderr)
        return 2
    display = Display(fleet, live=False if args.plain else None)
    try:
        problems = run(fleet, display)
    except (ControlError, provision.ProvisionError, GatewayError, OSError) as err:
        print(f"fleet: {err} (logs in {state})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"fleet: {json.dumps(fleet.summary())}")
    for problem in problems:
        print(f"fleet: MISMATCH {problem}", file=sys.stderr)
    if problems:
        return 1
    print("fleet: the gateway agrees with the scenario")
    return 0


if __name__ == "__main__":
    sys.exit(main())
