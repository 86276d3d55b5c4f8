"""tools/sim: one simulated handheld, provisioned through the gateway's API, running the real
firmware in the MicroPython unix port with the simulated board (docs/simulator.md).
`tools/sim fleet ...` runs many (devkit.fleet)."""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from devkit.handheld import DEFAULT_HEAP, firmware_command, provision_flash
from devkit.provision import ProvisionError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tools/sim", description=__doc__)
    parser.add_argument(
        "--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:5000"
    )
    parser.add_argument("--token", required=True, help="the gateway's BAGSCAN_API_TOKEN")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument(
        "--state-dir", help="the handheld's flash (default: a folder per device id)"
    )
    parser.add_argument("--heap", default=DEFAULT_HEAP, help="MicroPython heap, e.g. 100K")
    args = parser.parse_args(argv)

    state = Path(args.state_dir or Path(tempfile.gettempdir()) / "bagscan-sim" / args.device_id)
    try:
        provision_flash(state, args.gateway, args.token, args.device_id)
        argv, env = firmware_command(state, args.control_port, args.heap)
    except ProvisionError as err:
        sys.exit(f"sim: provisioning failed: {err}")
    except RuntimeError as err:  # no micropython
        sys.exit(f"sim: {err}")
    # exec: this process becomes the handheld, so SIGKILL of it is a power cut.
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    if sys.argv[1:2] == ["fleet"]:  # tools/sim fleet ...: many handhelds
        from devkit.fleet import cli

        sys.exit(cli.main(sys.argv[2:]))
    main()
