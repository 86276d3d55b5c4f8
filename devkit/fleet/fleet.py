"""The fleet: N simulated handhelds set up at the gateway, started, and run through the
scenario's day step by step, in parallel."""

import shutil
import threading
import time
from pathlib import Path

from devkit import bundle, gateway_api, provision
from devkit.control import ControlError
from devkit.fleet.link import Link
from devkit.fleet.scenario import Device, plan
from devkit.fleet.worker import Unit, Worker, parcels_to_import
from devkit.handheld import BUILD, SimHandheld


class GatewayError(Exception):
    """The gateway answered a check's request with an error."""


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
            # The driver's route: the accounts of the sellers it picks up from.
            sellers = self.plan.scenario["sellers"]
            fields["accounts"] = [
                accounts[s["id"]] for s in sellers if s.get("driver") == driver["id"]
            ]
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
            mark = unit.sim.state_dir / "parcels" / "digest"
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
        bundle.build(BUILD)  # once, before N processes race to do it
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
        self.baseline = {
            b["bag_no"] for b in self.gateway_bags() if b["device_id"] in self.device_ids()
        }
        # The broker the gateway hands out; the handhelds reach it through the link.
        first = answers[0]["mqtt"]
        self.link = Link(*(self.broker or (first["host"], int(first["port"])))).start()
        numbers = self.numbers()
        seed = int(self.plan.scenario.get("seed", 1))
        for dev, answer in zip(self.plan.devices, answers, strict=True):
            # The flash of a provisioned handheld whose broker is the fleet's link.
            config = provision.device_config(
                answer, [], broker_host="127.0.0.1", broker_port=self.link.port
            )
            sim = SimHandheld.with_config(self.state_root / dev.device_id, config, self.heap)
            unit = Unit(dev, sim)
            with self.lock:  # stop() from another thread: no process starts after it
                if self.stop_event.is_set():
                    raise ControlError("the fleet was stopped while starting")
                sim.launch()
                self.units.append(unit)
            self.workers[dev.device_id] = Worker(unit, *numbers[dev.device_id], seed)
        for unit in self.units:
            unit.sim.connect(timeout=60)
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
            unit.sim.stop()
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
        behind = gateway_api.wait_applied(self.gateway, self.token, timeout, self.device_ids())
        if behind:
            n = sum(behind.values())
            raise GatewayError(f"{n} records stored but not applied in {timeout:.0f} s")

    # what the gateway holds

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
            if body.get("device_id") in self.device_ids():
                found.append(body)
        return found

    def device_ids(self) -> set[str]:
        return {d.device_id for d in self.plan.devices}

    def summary(self) -> dict:
        return {
            "devices": len(self.plan.devices),
            "seconds": round(time.monotonic() - self.started, 1),
            **self.tally(),
        }
