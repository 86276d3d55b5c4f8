"""Memory and speed of the handheld during one 300-parcel bag (docs/benchmarks.md).

Runs the real firmware in micropython (devkit.handheld.SimHandheld: no gateway, the MQTT
client retrying a closed port) and reports:
- live heap (gc.mem_alloc() right after gc.collect(), the control channel's "mem" line)
  at boot, every 100 parcels and after closing the bag;
- per-scan time: control-channel "scan" sent -> beep event received (so it includes the
  local socket round trip), median and 95th percentile over the 300 scans;
- the smallest -X heapsize (in KB steps) at which the whole bag still completes.

    .venv/bin/python bench/firmware_bag.py --heap 100K
    .venv/bin/python bench/firmware_bag.py --heap 192K --lang zh --no-search   # Chinese screens
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from devkit.control import ControlError
from devkit.handheld import SimHandheld

CONFIG = {
    "device_id": "hh-bench",
    "mqtt": {"host": "127.0.0.1", "port": 9, "user": "u", "password": "p"},
    "bag_range": [1, 1000],
}


def mem(ctl) -> int:
    ctl.send("mem")
    return ctl.expect(lambda o: "mem_alloc" in o)["mem_alloc"]


def one_bag(heap: str, state_dir: Path, lang: str = "en") -> dict:
    hh = SimHandheld.with_config(state_dir, {**CONFIG, "screen_lang": lang}, heap)
    try:
        ctl = hh.start()
        live = {"boot": mem(ctl)}
        times = []
        for i in range(300):
            t0 = time.perf_counter()
            event = ctl.scan(f"LZ{i:09d}CN")
            times.append(time.perf_counter() - t0)
            if event["beep"] != "ok":
                raise ControlError(f"scan {i} refused: {event}")
            if (i + 1) % 100 == 0:
                live[f"{i + 1} parcels"] = mem(ctl)
        ctl.weigh(31_000)
        ctl.key("ok")
        ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
        live["closed"] = mem(ctl)
        for mode in ("pickup", "hub", "bagging"):
            ctl.key("mode")
            time.sleep(0.2)
            live[mode] = mem(ctl)
        return {
            "live_heap": live,
            "scan_ms_median": round(statistics.median(times) * 1000, 2),
            "scan_ms_p95": round(statistics.quantiles(times, n=20)[-1] * 1000, 2),
        }
    finally:
        hh.kill()


def completes(kb: int, tmp: Path, lang: str) -> bool:
    try:
        one_bag(f"{kb}K", tmp / f"min{kb}", lang)
        return True
    except (ControlError, OSError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heap", default="192K")
    parser.add_argument("--no-search", action="store_true", help="skip the smallest-heap search")
    parser.add_argument("--lang", choices=("en", "zh"), default="en", help="the screens' language")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = one_bag(args.heap, Path(tmp) / "run", args.lang)
        result["heap"] = args.heap
        result["lang"] = args.lang
        if not args.no_search:
            lo, hi = 64, 256  # KB: lo fails, hi completes
            while hi - lo > 4:
                mid = (lo + hi) // 2
                if completes(mid, Path(tmp), args.lang):
                    hi = mid
                else:
                    lo = mid
            result["smallest_heap_kb"] = hi
    print(result)


if __name__ == "__main__":
    main()
