"""Firmware and gateway run the same wire.py and wire_schema.py; both must judge the same samples
alike."""

import ast
import json
from pathlib import Path

from gateway.services import devices
from protocol import wire, wire_schema

SAMPLES = Path(__file__).with_name("wire_samples.json")
ROOT = Path(__file__).resolve().parents[2]


def _python_verdicts(samples):
    out = []
    for s in samples:
        check = {"events": wire_schema.events_error, "ack": wire.ack_error}[s["check"]]
        try:
            msg = wire_schema.decode(s["payload"])  # as the gateway reads it
        except ValueError:
            out.append("not JSON")
            continue
        out.append(check(msg))
    return out


MPY = r"""
import json
from protocol import wire, wire_schema
samples = json.load(open(%r))
out = []
for s in samples:
    check = {"events": wire_schema.events_error, "ack": wire.ack_error}[s["check"]]
    try:
        msg = wire_schema.decode(s["payload"])  # as the gateway reads it
    except ValueError:
        out.append("not JSON")
        continue
    out.append(check(msg))
print(json.dumps(out))
"""


def test_every_sample_is_judged_as_documented():
    samples = json.loads(SAMPLES.read_text())
    for sample, verdict in zip(samples, _python_verdicts(samples), strict=True):
        assert (verdict is None) == sample["ok"], (sample["why"], verdict)


def test_micropython_and_cpython_agree_on_every_sample(run_mpy):
    samples = json.loads(SAMPLES.read_text())
    proc = run_mpy(MPY % str(SAMPLES))
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == _python_verdicts(samples)


def test_payloads_built_on_the_device_validate_on_the_gateway(run_mpy):
    proc = run_mpy(
        "from protocol import wire, wire_schema\n"
        "import json\n"
        "r1 = json.dumps({'s': 1, 'b': 2, 't': 5, 'w': 1700000000, 'q': 1, 'k': 'bag_open',"
        " 'bag': 'BS0000000001'}).encode()\n"
        "r2 = json.dumps({'s': 2, 'b': 2, 't': 9, 'w': 1700000001, 'q': 1, 'k': 'parcel',"
        " 'bag': 'BS0000000001', 'trk': 'LZ123456789CN'}).encode()\n"
        # as app/sync.py _batch writes it into the MQTT client's buffer
        "print((wire.EVENTS_OPEN + b','.join([r1, r2]) + wire.EVENTS_CLOSE).decode())\n"
        "print(wire_schema.ack_payload(2).decode())\n"
        "print(wire.topic('hh-1', wire.EVENTS))\n"
    )
    events, ack, topic = proc.stdout.strip().splitlines()[-3:]
    assert wire_schema.events_error(json.loads(events)) is None
    assert wire.ack_error(json.loads(ack)) is None
    assert wire_schema.parse_topic(topic) == ("hh-1", "events")


def test_the_last_will_and_a_status_validate():
    assert devices.status_error(json.loads('{"v":1,"online":false}')) is None
    good = {"v": 1, "online": True, "fw": "0.1.0", "battery_mv": 3900, "backlog": 0,
            "wall": 1700000000, "boot": 3, "t": 123, "q": 0}  # fmt: skip
    assert devices.status_error(good) is None
    assert devices.status_error(dict(good, online="yes")) is not None
    assert devices.status_error(dict(good, extra=1)) is not None
    assert devices.status_error(dict(good, fw="\x00")) is not None


def test_topics_name_one_device_and_one_kind():
    assert wire_schema.parse_topic("bagscan/v1/dev/hh-1/events") == ("hh-1", "events")
    for bad in ["bagscan/v1/dev/+/events", "bagscan/v1/dev/#", "bagscan/v1/dev/a/b/events",
                "bagscan/v2/dev/hh-1/events", "bagscan/v1/dev/hh-1/other", "bagscan/v1/dev//events",
                "bagscan/v1/dev/" + "x" * 33 + "/events", "bagscan/v1/dev/hé/events"]:  # fmt: skip
        assert wire_schema.parse_topic(bad) is None, bad


def _firmware_constant(path: str, name: str):
    """A module-level constant of a firmware file, read without running MicroPython code."""
    tree = ast.parse((ROOT / path).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            value = node.value
            return ast.literal_eval(value.args[0] if isinstance(value, ast.Call) else value)
    raise LookupError(name)


def _scale_capacity() -> int:
    tree = ast.parse((ROOT / "firmware/drivers/scale.py").read_text())
    scale = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Scale")
    init = next(n for n in scale.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    names = [a.arg for a in init.args.args]
    defaults = dict(zip(names[-len(init.args.defaults) :], init.args.defaults, strict=True))
    return ast.literal_eval(defaults["capacity_g"])


def test_the_wire_ranges_are_what_the_handheld_can_send():
    """A record the handheld journals must pass the wire, or the device resends it forever:
    the validator's bounds are the firmware's own."""
    assert wire_schema.MAX_GRAMS == _scale_capacity()
    assert wire_schema.MAX_SIDE_CM == _firmware_constant(
        "firmware/app/bagging.py", "_MAX_SIDE_INPUT"
    )
    presets = _firmware_constant("firmware/app/bagging.py", "_SIZES")
    assert all(1 <= side <= wire_schema.MAX_SIDE_CM for sides in presets for side in sides)
    assert wire_schema.MAX_HANDOVER_BAGS == _firmware_constant(
        "firmware/app/pickup.py", "_MAX_BAGS"
    )
