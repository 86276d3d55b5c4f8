"""The JSON API against its OpenAPI document, as a new client would meet it: schemathesis with
every check (server errors, status codes, content types, response schemas, schema-valid
requests accepted and schema-invalid ones refused, 405 with Allow for undeclared methods,
auth, stateful links between operations) over real HTTP, on SQLite and on PostgreSQL.

The run is bounded (MAX_EXAMPLES per operation, one worker, a fixed seed) to stay under a
minute per database; BAGSCAN_CONTRACT_EXAMPLES raises it for a long run.
"""

import os
import re
import subprocess
import sys
import threading

import pytest
from test_registry import signed_handover
from werkzeug.serving import WSGIRequestHandler, make_server

from devkit.ports import free_port
from devkit.sample_world import TOKEN

MAX_EXAMPLES = int(os.environ.get("BAGSCAN_CONTRACT_EXAMPLES", "25"))
SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]

# The two operations whose 404 can name a store in the body (STORE_NOT_FOUND, STORE_NOT_LINKED):
# the check `ensure_resource_availability` reads any 404 after a link from POST /api/accounts as
# "the account just created is missing", though the account is there and the body's store is not.
CONFIG = f"""
seed = 21
workers = 1
headers = {{ Authorization = "Bearer {TOKEN}" }}

[generation]
max-examples = {MAX_EXAMPLES}

[[operations]]
include-operation-id = ["linkStore", "addAddress"]
checks.ensure_resource_availability.enabled = false
"""


class Quiet(WSGIRequestHandler):
    def log_request(self, *args) -> None:
        """Thousands of requests: schemathesis reports the ones that matter."""


@pytest.fixture
def served(app, world):
    """The test app on a free port, with bags, a handover and its receipt to find."""
    signed_handover(app, world)
    server = make_server("127.0.0.1", free_port(), app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def run_schemathesis(base_url: str, tmp_path) -> tuple[int, str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    proc = subprocess.run(
        [
            *SCHEMATHESIS,
            "--config-file",
            str(config),
            "run",
            f"{base_url}/api/openapi.json",
            "--checks",
            "all",
            "--continue-on-failure",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_the_api_does_what_its_openapi_document_says(served, tmp_path):
    code, out = run_schemathesis(served, tmp_path)
    generated = re.search(r"(\d+) generated", out)
    print(out[out.find("SUMMARY") :])  # requests generated, failures by kind (pytest -s)
    assert generated and int(generated.group(1)) > 500, out
    assert code == 0, out
