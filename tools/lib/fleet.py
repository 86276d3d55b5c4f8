"""tools/sim fleet: N simulated handhelds (the real firmware on the MicroPython unix port) run a
scripted day from a scenario file against a gateway, with a live progress table; at the end
the gateway's bags (and handovers, receipts) must match what the scenario planned, exactly.

Scenario files: tools/scenarios/*.json, format in docs/tools.md ("Scenarios").
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import bundle
import gateway_api
import provision
from control import ControlError, Handheld


class GatewayError(Exception):
    """The gateway answered a check's request with an error."""


ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "tools" / "lib" / "sim.py"
SCENARIOS = ROOT / "tools" / "scenarios"
DEFAULT_SCENARIO = SCENARIOS / "day.json"
STEP_KINDS = ("bag", "outage", "sync", "pickup", "arrive")
# The courier's reasons, in the order the handheld offers them (firmware/app/wire.py).
REFUSE_REASONS = ("no_goods", "packaging", "over_limit")
# A parcel the platform lists in one of these states is refused by the handheld from its
# parcel-state cache (firmware/app/bagging.py; codes of firmware/app/rules.py).
NOT_BAGGABLE = {"pending": "NOT_RTS", "cancelled": "CANCELLED", "received": "ALREADY_RECEIVED"}
DUPLICATE = "DUPLICATE"
# The config message carries about 300 parcels of an account (docs/api.md, "Device config").
MAX_CACHED_PARCELS = 250


class ScenarioError(ValueError):
    pass


# --- the plan: what every handheld does, and the totals that must follow ----------------------


@dataclass
class Device:
    device_id: str
    role: str  # "seller" (bags, and the driver picks up on it) or "hub"
    site: str  # seller id or hub id
    # live figures for the display and the result
    step: str = "starting"
    bags: int = 0
    parcels: int = 0
    refused: int = 0
    done: int = 0  # bags picked up (seller) or received (hub)
    depth: int | None = None
    connected: bool | None = None
    screen: str = ""
    error: str = ""
    closed: dict = field(default_factory=dict)  # bag_no -> {"parcels": [...], "grams": g}


@dataclass
class Plan:
    scenario: dict
    devices: list[Device]
    bags: int = 0
    parcels: int = 0
    refused_scans: int = 0
    handovers: int = 0
    receipts: int = 0
    statuses: dict = field(default_factory=dict)
    refusals: dict = field(default_factory=dict)  # refusal code -> scans refused with it

    def totals(self) -> dict:
        return {
            "bags": self.bags,
            "parcels": self.parcels,
            "refused_scans": self.refused_scans,
            "refusals": {k: v for k, v in sorted(self.refusals.items()) if v},
            "handovers": self.handovers,
            "receipts": self.receipts,
            "statuses": {k: v for k, v in sorted(self.statuses.items()) if v},
        }


def plan(scenario: dict, devices: int | None = None) -> Plan:
    """Assign handhelds to sellers and hubs; count what the day must produce.

    devices overrides the fleet size: hubs keep their handhelds, the others go to the sellers
    in turn."""
    sellers = scenario.get("sellers") or []
    if not sellers:
        raise ScenarioError("a scenario needs at least one seller")
    hubs = scenario.get("hubs", [])
    if devices is None:
        per_seller = [int(s.get("handhelds", 1)) for s in sellers]
    else:
        spare = devices - len(hubs)
        if spare < len(sellers):
            raise ScenarioError(
                f"{devices} handhelds: {len(hubs)} for hubs leave fewer than one per seller "
                f"({len(sellers)})"
            )
        per_seller = [
            spare // len(sellers) + (i < spare % len(sellers)) for i in range(len(sellers))
        ]
    drivers = {d["id"] for d in scenario.get("drivers", [])}
    for seller in sellers:
        if seller.get("driver") and seller["driver"] not in drivers:
            raise ScenarioError(f"seller {seller['id']}: no driver {seller['driver']!r}")
    prefix = scenario.get("prefix", "fleet")
    fleet = []
    for seller, count in zip(sellers, per_seller, strict=True):
        for n in range(1, count + 1):
            fleet.append(Device(f"{prefix}-{seller['id']}-{n}".lower(), "seller", seller["id"]))
    for hub in hubs:
        fleet.append(Device(f"{prefix}-{hub['id']}".lower(), "hub", hub["id"]))
    result = Plan(scenario, fleet)
    bags_of = {s["id"]: 0 for s in sellers}  # per seller
    cached = {s["id"]: 0 for s in sellers}  # parcels imported for the seller
    status = result.statuses
    codes = result.refusals
    for step in _flatten(scenario.get("day", [])):
        if step["do"] == "bag":
            bad = _bad_parcels(step)
            for seller, count in zip(sellers, per_seller, strict=True):
                bags = int(step.get("bags", 1)) * count
                bags_of[seller["id"]] += bags
                cached[seller["id"]] += bags * (int(step.get("parcels", 5)) + len(bad))
                result.bags += bags
                result.parcels += bags * int(step.get("parcels", 5))
                duplicates = bags * int(step.get("duplicates", 0))
                codes[DUPLICATE] = codes.get(DUPLICATE, 0) + duplicates
                for state in bad:
                    codes[NOT_BAGGABLE[state]] = codes.get(NOT_BAGGABLE[state], 0) + bags
                result.refused_scans += duplicates + bags * len(bad)
            status["awaiting_pickup"] = result.bags - sum(
                v for k, v in status.items() if k != "awaiting_pickup"
            )
        elif step["do"] == "pickup":
            refused = _refusals(step, bags_of)
            waiting = status.get("awaiting_pickup", 0)
            visited = [s for s in sellers if s.get("driver") and bags_of[s["id"]]]
            picked = sum(bags_of[s["id"]] for s in visited) - len(refused)
            result.handovers += len(visited)
            result.receipts += len(visited)
            status["pickup_failed"] = status.get("pickup_failed", 0) + len(refused)
            status["picked_up"] = status.get("picked_up", 0) + picked
            status["awaiting_pickup"] = waiting - picked - len(refused)
        elif step["do"] == "arrive":
            heavier = len(step.get("heavier", []))
            arrived = status.get("picked_up", 0)
            if heavier > arrived:
                raise ScenarioError("arrive: more heavier bags than bags picked up")
            status["picked_up"] = 0
            status["received"] = status.get("received", 0) + arrived - heavier
            status["received_exception"] = status.get("received_exception", 0) + heavier
    for seller_id, n in cached.items():
        if n > MAX_CACHED_PARCELS:
            raise ScenarioError(
                f"seller {seller_id}: {n} parcels to import; the handheld's cache holds about "
                f"{MAX_CACHED_PARCELS} (fewer bags or handhelds per seller)"
            )
    expected = scenario.get("expect")
    if devices is None and expected is not None:
        mine = {k: v for k, v in result.totals().items() if k in expected}
        if mine != {k: expected[k] for k in mine}:
            raise ScenarioError(f"the scenario's expect {expected} disagrees with its day {mine}")
    return result


def _bad_parcels(step: dict) -> list[str]:
    bad = step.get("not_baggable", [])
    for state in bad:
        if state not in NOT_BAGGABLE:
            raise ScenarioError(f"bag: not_baggable {state!r}: one of {', '.join(NOT_BAGGABLE)}")
    return bad


def _refusals(step: dict, bags_of: dict) -> list[dict]:
    out = step.get("refuse", [])
    for r in out:
        if r.get("seller") not in bags_of or not 1 <= int(r.get("bag", 0)) <= bags_of[r["seller"]]:
            raise ScenarioError(f"pickup refuses {r}: no such bag of that seller")
        if r.get("why") not in REFUSE_REASONS:
            raise ScenarioError(f"pickup refuses {r}: why is one of {', '.join(REFUSE_REASONS)}")
    return out


def _flatten(steps: list[dict]) -> list[dict]:
    out = []
    for step in steps:
        if step.get("do") not in STEP_KINDS:
            raise ScenarioError(f"unknown step {step.get('do')!r}; known: {', '.join(STEP_KINDS)}")
        out.append(step)
        if step["do"] == "outage" and "during" in step:
            out += _flatten([step["during"]])
    return out


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ScenarioError(f"cannot read scenario {path}: {err}") from None


# --- the network between the handhelds and the broker ------------------------------------------


class Link:
    """A TCP relay in front of the broker: every handheld's MQTT connection runs through it, so
    an outage (Wi-Fi lost at the seller) cuts every connection and refuses new ones."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.up = True
        self.port = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link", daemon=True)

    def start(self) -> "Link":
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = asyncio.all_tasks(loop)
        if tasks:  # aborted transports end their pipes; cancel only what still hangs
            _, hanging = loop.run_until_complete(asyncio.wait(tasks, timeout=2))
            for task in hanging:
                task.cancel()
            if hanging:
                loop.run_until_complete(asyncio.wait(hanging))
        loop.run_until_complete(server.wait_closed())
        loop.close()

    async def _serve(self, reader, writer) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        self.connections += 1
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass
        finally:
            self.connections -= 1
            self._writers -= {writer, up_writer}

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def set_up(self, up: bool) -> None:
        def apply() -> None:
            self.up = up
            if not up:
                for writer in list(self._writers):
                    writer.transport.abort()

        self._loop.call_soon_threadsafe(apply)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


# --- one handheld ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Unit:
    """A simulated handheld process and its control channel."""

    def __init__(self, dev: Device, state_dir: Path, heap: str | None):
        self.dev = dev
        self.state_dir = state_dir
        self.heap = heap
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.hh: Handheld | None = None

    def configure(self, answer: dict, link: Link) -> None:
        """The flash of a provisioned handheld whose broker is the fleet's link."""
        cfg = provision.device_config(answer, [], broker_host="127.0.0.1", broker_port=link.port)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "config.json").write_text(json.dumps(cfg))

    def start(self, gateway: str, token: str) -> None:
        args = [sys.executable, str(SIM), "--gateway", gateway, "--token", token,
                "--device-id", self.dev.device_id, "--control-port", str(self.port),
                "--state-dir", str(self.state_dir)]  # fmt: skip
        if self.heap:
            args += ["--heap", self.heap]
        with (self.state_dir.parent / f"{self.dev.device_id}.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def connect(self) -> Handheld:
        self.hh = Handheld(self.port, timeout=60)
        return self.hh

    def poll(self) -> None:
        st = self.hh.state()
        self.dev.depth = st.get("journal_depth")
        self.dev.connected = st.get("connected")
        self.dev.screen = " | ".join(line for line in st.get("screen", []) if line)

    def stop(self) -> None:
        if self.hh:
            self.hh.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- what a handheld does in each step ---------------------------------------------------------


_VERDICT = (["RECEIVED"], ["EXCEPTION"])  # the hub's screen after "ok" (firmware/app/hub.py)


def _screen(obj: dict) -> list[str]:
    return obj.get("screen") or []


def parcel_number(seller_no: int, device_no: int, serial: int) -> str:
    return f"LZ{seller_no:02d}{device_no:03d}{serial:06d}CN"


def refused_number(seller_no: int, device_no: int, serial: int) -> str:
    """A parcel the handheld must refuse: its own series, so it never meets a bagged one."""
    return f"LX{seller_no:02d}{device_no:03d}{serial:06d}CN"


def parcels_to_import(steps: list[dict], seller_no: int, device_no: int) -> list[tuple[str, str]]:
    """(tracking number, platform status) of every parcel one seller handheld scans in the
    day, in the order Worker.bag scans them: the platform import that precedes the day."""
    out, good, bad = [], 0, 0
    for step in _flatten(steps):
        if step["do"] != "bag":
            continue
        for _ in range(int(step.get("bags", 1))):
            for _ in range(int(step.get("parcels", 5))):
                good += 1
                out.append((parcel_number(seller_no, device_no, good), "rts"))
            for state in _bad_parcels(step):
                bad += 1
                out.append((refused_number(seller_no, device_no, bad), state))
    return out


class Worker:
    def __init__(self, unit: Unit, seller_no: int, device_no: int, seed: int):
        self.unit = unit
        self.seller_no = seller_no
        self.device_no = device_no
        self.rng = random.Random(f"{seed}/{unit.dev.device_id}")
        self.serial = 0
        self.bad_serial = 0
        self.refused_parcels: list[str] = []  # scanned, refused from the parcel-state cache
        self.handover: str | None = None

    def bag(self, step: dict) -> None:
        dev, hh = self.unit.dev, self.unit.hh
        for _ in range(int(step.get("bags", 1))):
            parcels = []
            for i in range(int(step.get("parcels", 5))):
                self.serial += 1
                trk = parcel_number(self.seller_no, self.device_no, self.serial)
                beep = hh.scan(trk)
                if beep.get("beep") != "ok":
                    raise ControlError(f"{trk} refused: {beep}")
                parcels.append(trk)
                dev.parcels += 1
                if i == 0:
                    for _ in range(int(step.get("duplicates", 0))):
                        # The same label scanned again: refused, not in the bag twice.
                        again = hh.scan(trk)
                        if again.get("code") != DUPLICATE:
                            raise ControlError(f"duplicate {trk} not refused: {again}")
                        dev.refused += 1
            for state in step.get("not_baggable", []):
                # The platform lists it, but not ready to ship: the cache refuses it, online
                # or not, and nothing reaches the journal.
                self.bad_serial += 1
                trk = refused_number(self.seller_no, self.device_no, self.bad_serial)
                beep = hh.scan(trk)
                if beep.get("code") != NOT_BAGGABLE[state]:
                    raise ControlError(f"{state} parcel {trk} not refused: {beep}")
                self.refused_parcels.append(trk)
                dev.refused += 1
            lo, hi = step.get("grams", [2000, 15000])
            grams = self.rng.randint(lo, hi)
            hh.weigh(grams)
            closed = self.press("ok", lambda o: _screen(o)[:1] == ["CLOSED"])
            dev.closed[closed["screen"][1]] = {"parcels": parcels, "grams": grams}
            dev.bags += 1
            self.unit.poll()

    def press(self, key: str, done, tries: int = 4) -> dict:
        """Press key until an event or the state satisfies done. The simulated key is held
        40 ms; on a loaded machine the keys task may not sample it, so a lost press is
        pressed again, never a press that showed its effect."""
        hh = self.unit.hh
        for _ in range(tries):
            hh.key(key)
            try:
                return hh.expect(done, timeout=3)
            except ControlError:
                st = hh.state()
                if done(st):
                    return st
        raise ControlError(f"key {key} had no effect after {tries} presses: {hh.events[-2:]}")

    def pickup(self, driver: dict, bags: list[str], refuse: dict[str, str]) -> None:
        """The driver signs in on this handheld, scans the seller's bags, refuses some and
        closes a signed handover (firmware/app/pickup.py)."""
        dev, hh = self.unit.dev, self.unit.hh
        self.press("mode", lambda o: _screen(o)[:1] == ["PICKUP"])
        hh.send(f"scan DRV:{driver['id']}")
        hh.expect(lambda o: _screen(o)[2:3] == ["PIN"])
        if hh.scan(f"PIN:{driver['pin']}").get("beep") != "ok":
            raise ControlError(f"driver {driver['id']} could not sign in: {hh.events[-1]}")
        for bag in bags:
            beep = hh.scan(bag)
            if beep.get("beep") != "ok":
                raise ControlError(f"pickup scan of {bag} refused: {beep}")
            why = refuse.get(bag)
            if why is None:
                dev.done += 1
                continue
            self.press(
                "cancel", lambda o, b=bag: _screen(o)[:3] == ["REFUSE", b, REFUSE_REASONS[0]]
            )
            for reason in REFUSE_REASONS[1 : REFUSE_REASONS.index(why) + 1]:
                self.press("up", lambda o, b=bag, r=reason: _screen(o)[:3] == ["REFUSE", b, r])
            self.press("ok", lambda o: o.get("beep") == "warn")
        done = self.press("ok", lambda o: _screen(o)[:1] == ["HANDOVER"])
        self.handover = done["screen"][1]
        # mode: pickup -> hub -> bagging, back to where the seller's staff left it.
        self.press("mode", lambda o: _screen(o)[:1] == ["HUB ARRIVAL"])
        self.press("mode", lambda o: o.get("mode") == "bagging" or _screen(o)[:1] == ["BAGGING"])

    def arrive(self, bags: list[tuple[str, int]]) -> None:
        """Hub staff scan each bag, put it on the scale and receive it (firmware/app/hub.py)."""
        dev, hh = self.unit.dev, self.unit.hh
        if hh.state().get("mode") != "hub":
            self.press("mode", lambda o: _screen(o)[:1] == ["PICKUP"])
            self.press("mode", lambda o: _screen(o)[:1] == ["HUB ARRIVAL"])
        for bag, grams in bags:
            hh.send(f"scan {bag}")
            hh.expect(lambda o, b=bag: _screen(o)[:1] == [b])
            hh.weigh(grams)
            self.press("ok", lambda o, b=bag: _screen(o)[:1] == [b] and _screen(o)[1:2] in _VERDICT)
            dev.done += 1
            hh.weigh(0)
            self.unit.poll()

    def sync(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.unit.poll()
            if self.unit.dev.depth == 0 and self.unit.dev.connected:
                return
            time.sleep(0.2)
        raise ControlError(f"journal not drained in {timeout:.0f} s: {self.unit.dev.depth} left")


# --- the progress display ---------------------------------------------------------------------


class Display:
    """A table redrawn in place on a terminal; on a pipe, one line per change of step."""

    def __init__(self, fleet: "Fleet", stream=None, live: bool | None = None):
        self.fleet = fleet
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="display", daemon=True)
        self._last_plain = None
        self._lines = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.draw()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.draw()

    def table(self) -> list[str]:
        f = self.fleet
        lines = [
            f"{f.plan.scenario.get('name', 'fleet')}: step {f.step_no}/{f.step_count} "
            f"{f.step_name}  link {'UP' if f.link_up() else 'DOWN'} "
            f"({f.link.connections if f.link else 0} conn)  "
            f"{time.monotonic() - f.started:5.1f} s",
            f"{'handheld':<24} {'role':<9} {'step':<10} {'bags':>4} {'parcels':>7} "
            f"{'refused':>7} {'queue':>5} {'link':<4} screen",
        ]
        for d in f.plan.devices:
            link = "-" if d.connected is None else ("up" if d.connected else "down")
            depth = "-" if d.depth is None else str(d.depth)
            lines.append(
                f"{d.device_id[:24]:<24} {d.role:<9} {d.step[:10]:<10} {d.bags:>4} "
                f"{d.parcels:>7} {d.refused:>7} {depth:>5} {link:<4} "
                f"{(d.error or d.screen)[:40]}"
            )
        t = f.tally()
        lines.append(
            f"{'total':<24} {'':<9} {'':<10} {t['bags']:>4} {t['parcels']:>7} "
            f"{t['refused_scans']:>7} {t['queue']:>5}"
        )
        return lines

    def draw(self) -> None:
        with self.fleet.lock:
            if self.live:
                lines = self.table()
                up = f"\x1b[{self._lines}F" if self._lines else ""
                self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
                self._lines = len(lines)
            else:
                t = self.fleet.tally()
                key = (self.fleet.step_no, self.fleet.link_up(), t["bags"] // 10)
                if key != self._last_plain:
                    self._last_plain = key
                    self.stream.write(
                        f"fleet: {time.monotonic() - self.fleet.started:6.1f} s step "
                        f"{self.fleet.step_no}/{self.fleet.step_count} {self.fleet.step_name}; "
                        f"link {'up' if self.fleet.link_up() else 'DOWN'}; bags {t['bags']}, "
                        f"parcels {t['parcels']}, refused {t['refused_scans']}, "
                        f"queued {t['queue']}\n"
                    )
            self.stream.flush()


# --- the fleet --------------------------------------------------------------------------------


class Fleet:
    def __init__(
        self,
        gateway: str,
        token: str,
        scenario: dict,
        state_root: Path,
        devices: int | None = None,
        heap: str | None = None,
        broker: tuple[str, int] | None = None,
    ):
        self.gateway = gateway.rstrip("/")
        self.token = token
        self.plan = plan(scenario, devices)
        self.state_root = state_root
        self.heap = heap
        self.broker = broker
        self.lock = threading.Lock()
        self.units: list[Unit] = []
        self.workers: dict[str, Worker] = {}
        self.link: Link | None = None
        self.step_no = 0
        self.step_count = len(scenario.get("day", []))
        self.step_name = "starting"
        self.started = time.monotonic()
        self.stop_event = threading.Event()
        self.baseline: set[str] = set()
        self.refused_bags: set[str] = set()
        self.handovers: list[dict] = []
        self.cache_sizes: dict[str, int] = {}

    def link_up(self) -> bool:
        return self.link is None or self.link.up  # no link yet: nothing is cut

    def tally(self) -> dict:
        devs = self.plan.devices
        return {
            "bags": sum(d.bags for d in devs),
            "parcels": sum(d.parcels for d in devs),
            "refused_scans": sum(d.refused for d in devs),
            "refused_parcels": sum(len(w.refused_parcels) for w in self.workers.values()),
            "queue": sum(d.depth or 0 for d in devs),
        }

    # start-up and shut-down

    def api_call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        return gateway_api.call(self.gateway, self.token, method, path, body)

    def setup(self) -> dict[str, int]:
        """The gateway's side of the day (docs/api.md): an account with its store for every
        seller, the drivers with their PINs. Returns the account id of each seller."""
        accounts = {}
        for seller in self.plan.scenario["sellers"]:
            store = {"seller_id": seller["id"], "seller_name": seller.get("name", seller["id"])}
            status, body = self.api_call("POST", "/api/accounts", {"name": store["seller_name"]})
            if status != 201:
                raise ControlError(f"gateway: account for {seller['id']}: {status} {body}")
            accounts[seller["id"]] = body["id"]
            status, body = self.api_call("POST", "/api/stores", store)
            if status not in (201, 409):
                raise ControlError(f"gateway: store {seller['id']}: {status} {body}")
            path = f"/api/accounts/{accounts[seller['id']]}/stores"
            status, body = self.api_call("POST", path, store)
            if status != 200:
                raise ControlError(f"gateway: linking {seller['id']}: {status} {body}")
        for driver in self.plan.scenario.get("drivers", []):
            fields = {k: driver[k] for k in ("id", "name", "badge", "pin") if k in driver}
            status, body = self.api_call("POST", "/api/drivers", fields)
            if status not in (201, 409):
                raise ControlError(f"gateway: driver {driver['id']}: {status} {body}")
        return accounts

    def numbers(self) -> dict[str, tuple[int, int]]:
        """(seller number, handheld number at its site) of each handheld: its parcel series."""
        seller_ids = [s["id"] for s in self.plan.scenario["sellers"]]
        counters: dict[str, int] = {}
        out = {}
        for dev in self.plan.devices:
            counters[dev.site] = counters.get(dev.site, 0) + 1
            seller_no = seller_ids.index(dev.site) + 1 if dev.site in seller_ids else 99
            out[dev.device_id] = (seller_no, counters[dev.site])
        return out

    def import_parcels(self) -> None:
        """The platform's parcels (POST /api/parcels): every parcel the sellers' handhelds will
        scan, ready to ship or not, so bagging works on known parcels and the handhelds refuse
        the others from their cache. Before the handhelds are registered, so the config each
        gets at registration already carries its account's parcels."""
        hubs = {s["id"]: s.get("hub", "SZ") for s in self.plan.scenario["sellers"]}
        numbers = self.numbers()
        rows = []
        self.cache_sizes = {}
        for dev in self.sellers():
            mine = parcels_to_import(self.plan.scenario.get("day", []), *numbers[dev.device_id])
            rows += [
                {"tracking_no": trk, "seller_id": dev.site, "status": state, "hub": hubs[dev.site]}
                for trk, state in mine
            ]
            self.cache_sizes[dev.site] = self.cache_sizes.get(dev.site, 0) + len(mine)
        status, body = self.api_call("POST", "/api/parcels", {"parcels": rows})
        if status != 200:
            raise ControlError(f"gateway: parcel import: {status} {body}")

    def wait_for_caches(self, timeout: float = 60) -> None:
        """Until every seller handheld holds its account's parcels. The control channel does
        not show the cache, so the fleet reads the index mark on the handheld's flash
        (firmware/app/parcels.py FlashIndex: "<count> <digest>")."""
        deadline = time.monotonic() + timeout
        for unit in self.units:
            if unit.dev.role != "seller":
                continue
            want = self.cache_sizes.get(unit.dev.site, 0)
            mark = unit.state_dir / "parcels" / "digest"
            have = None
            while time.monotonic() < deadline and not self.stop_event.is_set():
                try:
                    have = int(mark.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    have = None
                if have == want:
                    break
                time.sleep(0.1)
            else:
                raise ControlError(
                    f"{unit.dev.device_id}: parcel cache holds {have} of {want} parcels"
                )

    def start(self) -> None:
        bundle.build(ROOT / "build" / "sim")  # once, before N processes race to do it
        self.state_root.mkdir(parents=True, exist_ok=True)
        accounts = self.setup()
        self.import_parcels()
        answers = []
        for dev in self.plan.devices:
            binding = {"role": dev.role}
            if dev.role == "seller":
                binding["account_id"] = accounts[dev.site]
            try:
                answer = provision.register(self.gateway, self.token, dev.device_id, **binding)
                # A new device: fresh flash, whatever an earlier run left.
                shutil.rmtree(self.state_root / dev.device_id, ignore_errors=True)
            except provision.ProvisionError as err:
                if not err.exists:
                    raise
                # The same handheld again: it keeps its flash (journal, bag counter).
                answer = provision.register(
                    self.gateway, self.token, dev.device_id, replace=True, **binding
                )
            answers.append(answer)
        self.baseline = {b["bag_no"] for b in self.gateway_bags() if b["device_id"] in self._ids()}
        # The broker the gateway hands out; the handhelds reach it through the link.
        first = answers[0]["mqtt"]
        self.link = Link(*(self.broker or (first["host"], int(first["port"])))).start()
        numbers = self.numbers()
        seed = int(self.plan.scenario.get("seed", 1))
        for dev, answer in zip(self.plan.devices, answers, strict=True):
            unit = Unit(dev, self.state_root / dev.device_id, self.heap)
            unit.configure(answer, self.link)
            with self.lock:  # stop() from another thread: no process starts after it
                if self.stop_event.is_set():
                    raise ControlError("the fleet was stopped while starting")
                unit.start(self.gateway, self.token)
                self.units.append(unit)
            self.workers[dev.device_id] = Worker(unit, *numbers[dev.device_id], seed)
        for unit in self.units:
            unit.connect()
            unit.dev.step = "ready"
            unit.poll()
        self.wait_for_caches()

    def stop(self) -> None:
        """Stop every handheld; safe from another thread while start() or a step runs (the
        steps then fail on their closed control channels)."""
        with self.lock:
            self.stop_event.set()
            units = list(self.units)
        for unit in units:
            unit.stop()
        if self.link:
            self.link.stop()

    # the day

    def _each(self, name: str, work, devices: list[Device] | None = None) -> None:
        """Run work(worker) on every handheld of `devices` in parallel; raise the first error."""
        errors: list[str] = []

        def run(worker: Worker) -> None:
            dev = worker.unit.dev
            dev.step = name
            try:
                work(worker)
                dev.step = "done " + name
            except (ControlError, OSError) as err:
                dev.error = f"{name}: {err}"
                errors.append(f"{dev.device_id}: {dev.error}")

        targets = devices if devices is not None else self.plan.devices
        threads = [
            threading.Thread(target=run, args=(self.workers[d.device_id],), daemon=True)
            for d in targets
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise ControlError(f"step {name} failed on {len(errors)} handhelds: {errors[0]}")

    def sellers(self) -> list[Device]:
        return [d for d in self.plan.devices if d.role == "seller"]

    def bags_of(self, seller_id: str) -> list[str]:
        """The seller's closed bags in bag-number order: what the driver finds at the door."""
        return sorted(b for d in self.sellers() if d.site == seller_id for b in d.closed)

    def run_step(self, step: dict) -> None:
        kind = step["do"]
        if kind == "bag":
            self._each("bag", lambda w: w.bag(step), self.sellers())
        elif kind == "sync":
            timeout = float(step.get("timeout", 60))
            self._each("sync", lambda w: w.sync(timeout))
        elif kind == "outage":
            self.link.set_up(False)
            until = time.monotonic() + float(step.get("seconds", 5))
            try:
                if "during" in step:
                    self.run_step(step["during"])
                self.stop_event.wait(max(0.0, until - time.monotonic()))
            finally:
                self.link.set_up(True)
        elif kind == "pickup":
            self._pickup(step)
        elif kind == "arrive":
            self._arrive(step)

    def _pickup(self, step: dict) -> None:
        """Each seller's driver picks up on the seller's first handheld, all sellers at once."""
        drivers = {d["id"]: d for d in self.plan.scenario.get("drivers", [])}
        refuse = {}
        for r in step.get("refuse", []):
            refuse[self.bags_of(r["seller"])[int(r["bag"]) - 1]] = r["why"]
        jobs = {}
        for seller in self.plan.scenario["sellers"]:
            bags = self.bags_of(seller["id"])
            if seller.get("driver") and bags:
                first = next(d for d in self.sellers() if d.site == seller["id"])
                jobs[first.device_id] = (drivers[seller["driver"]], bags)
        self.refused_bags = set(refuse)
        devices = [d for d in self.plan.devices if d.device_id in jobs]
        self._each("pickup", lambda w: w.pickup(*jobs[w.unit.dev.device_id], refuse), devices)

    def _arrive(self, step: dict) -> None:
        """The picked-up bags reach the hub, shared among its handhelds; the scenario's
        heavier bags weigh more than at bagging (water, a swapped bag)."""
        closed = {b: i["grams"] for d in self.sellers() for b, i in d.closed.items()}
        arriving = sorted(b for b in closed if b not in self.refused_bags)
        extra = {}
        for h in step.get("heavier", []):
            extra[self.bags_of(h["seller"])[int(h["bag"]) - 1]] = int(h["grams"])
        hubs = [d for d in self.plan.devices if d.role == "hub"]
        if not hubs:
            raise ControlError("arrive: the scenario has no hub handhelds")
        share = {h.device_id: [] for h in hubs}
        for i, bag in enumerate(arriving):
            share[hubs[i % len(hubs)].device_id].append((bag, closed[bag] + extra.get(bag, 0)))
        self._each("arrive", lambda w: w.arrive(share[w.unit.dev.device_id]), hubs)

    def run_day(self) -> None:
        for i, step in enumerate(self.plan.scenario.get("day", []), 1):
            self.step_no, self.step_name = i, step.get("name") or step["do"]
            self.run_step(step)
        self.step_name = "final sync"
        self._each("sync", lambda w: w.sync(60))
        self.step_name = "gateway applying"
        self.wait_applied(60)
        self.step_name = "done"

    def wait_applied(self, timeout: float) -> None:
        """Journals drained means stored and acknowledged; the bags may follow the
        acknowledgements, so wait for them before comparing."""
        behind = gateway_api.wait_applied(self.gateway, self.token, timeout, self._ids())
        if behind:
            n = sum(behind.values())
            raise GatewayError(f"{n} records stored but not applied in {timeout:.0f} s")

    # the check

    def api(self, path: str) -> dict:
        status, body = self.api_call("GET", path)
        if status != 200:
            raise GatewayError(f"GET {path}: {status} {body.get('error')}")
        return body

    def gateway_bags(self) -> list[dict]:
        bags, page = [], 1
        while True:
            answer = self.api(f"/api/bags?per_page=200&page={page}")
            bags += answer["bags"]
            if len(bags) >= answer["total"] or not answer["bags"]:
                return bags
            page += 1

    def gateway_handovers(self) -> list[dict]:
        """Handovers recorded from this fleet's handhelds (ids are dense from 1)."""
        found, handover_id, misses = [], 1, 0
        while misses < 3:
            status, body = self.api_call("GET", f"/api/handovers/{handover_id}")
            handover_id += 1
            if status == 404:
                misses += 1
                continue
            misses = 0
            if body.get("device_id") in self._ids():
                found.append(body)
        return found

    def check(self) -> list[str]:
        """Differences between the plan, the handhelds and the gateway; empty when all agree."""
        problems = []
        planned = self.plan.totals()
        done = self.tally()
        for key in ("bags", "parcels", "refused_scans"):
            if done[key] != planned[key]:
                problems.append(
                    f"handhelds did {key} {done[key]}, the scenario plans {planned[key]}"
                )
        closed = {bag: info for d in self.plan.devices for bag, info in d.closed.items()}
        ours = {
            b["bag_no"]: b
            for b in self.gateway_bags()
            if b["device_id"] in self._ids() and b["bag_no"] not in self.baseline
        }
        if len(ours) != planned["bags"]:
            problems.append(f"gateway has {len(ours)} bags, the scenario plans {planned['bags']}")
        for bag_no, info in closed.items():
            got = ours.get(bag_no)
            if got is None:
                problems.append(f"bag {bag_no} is missing at the gateway")
                continue
            if abs((got["weight_g"] or 0) - info["grams"]) > 2:
                problems.append(
                    f"bag {bag_no}: gateway weight {got['weight_g']} g != {info['grams']} g"
                )
            inside = self.api(f"/api/bags/{bag_no}")["parcels"]
            if sorted(inside) != sorted(info["parcels"]):
                problems.append(
                    f"bag {bag_no}: gateway has parcels {sorted(inside)}, "
                    f"the handheld bagged {sorted(info['parcels'])}"
                )
        for worker in self.workers.values():
            for trk in worker.refused_parcels:
                bag_no = self.api(f"/api/parcels/{trk}")["bag_no"]
                if bag_no is not None:
                    problems.append(f"refused parcel {trk} is in bag {bag_no} at the gateway")
        parcels = sum(b["parcel_count"] for b in ours.values())
        if parcels != planned["parcels"]:
            problems.append(
                f"gateway has {parcels} parcels, the scenario plans {planned['parcels']}"
            )
        statuses: dict[str, int] = {}
        for b in ours.values():
            statuses[b["status"]] = statuses.get(b["status"], 0) + 1
        if statuses != planned["statuses"]:
            problems.append(f"bag statuses {statuses}, the scenario plans {planned['statuses']}")
        if planned["handovers"] or planned["receipts"]:
            handovers = self.gateway_handovers()
            receipts = [h for h in handovers if h["receipt"] is not None]
            if len(handovers) != planned["handovers"]:
                problems.append(
                    f"gateway has {len(handovers)} handovers, plan {planned['handovers']}"
                )
            if len(receipts) != planned["receipts"]:
                problems.append(f"gateway has {len(receipts)} receipts, plan {planned['receipts']}")
            self.handovers = handovers
        return problems

    def _ids(self) -> set[str]:
        return {d.device_id for d in self.plan.devices}

    def summary(self) -> dict:
        return {
            "devices": len(self.plan.devices),
            "seconds": round(time.monotonic() - self.started, 1),
            **self.tally(),
        }


def run(fleet: Fleet, display: Display | None = None) -> list[str]:
    """Start, run the day, check; always stops the handhelds. Returns the problems found."""
    try:
        fleet.start()
        if display:
            display.start()
        fleet.run_day()
        return fleet.check()
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
