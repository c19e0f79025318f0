"""Property-based fuzzing of the live API from its own OpenAPI schema (Schemathesis).

Every operation gets schema-valid and schema-violating requests, with a real key: no answer
may be a 5xx, invalid input must be refused with a 4xx, and every response must match the
documented status codes, headers and body schemas.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from devstack.stack import ROOT, LocalStack
from tests.support.reports import FUZZ_REPORT

MAX_EXAMPLES = os.environ.get("COURSEWISE_FUZZ_EXAMPLES", "25")
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_no_input_breaks_the_api(stack: LocalStack, tmp_path: Path) -> None:
    # Its own admin key, so nothing the fuzzer does can lock out the rest of the suite.
    key = stack.create_key("fuzzer", ["admin"], rate_limit=1_000_000)
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable, str(Path(__file__).with_name("run_schemathesis.py")),
            "--config-file", str(CONFIG),
            "run", f"{stack.api_url}/openapi.json",
            "--checks", "all",
            "--mode", "all",
            # Without the stateful phase: it could chain "list keys" into "revoke key".
            "--phases", "examples,coverage,fuzzing",
            "--header", f"Authorization: Bearer {key}",
            "--max-examples", MAX_EXAMPLES,
            "--seed", "20261122",
            "--request-timeout", "30",
            "--workers", "2",
            "--no-color",
            "--report", "json", "--report-json-path", str(report),
        ],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip
    output = result.stdout + result.stderr
    print(output[-6000:])
    # The endpoints the fuzzer registered would be sent every later task's events.
    with stack.client(key=key) as api:
        for hook in api.get("/v1/webhooks").json()["items"]:
            api.delete(f"/v1/webhooks/{hook['id']}")
    if os.environ.get("COURSEWISE_FUZZ_OUTPUT"):
        Path(os.environ["COURSEWISE_FUZZ_OUTPUT"]).write_text(output)
    assert result.returncode == 0, output[-6000:]
    assert key not in output  # the key is sanitised out of anything it prints
    cases = _cases(report, output)
    summary = [line for line in output.splitlines() if "generated" in line]
    FUZZ_REPORT.append(
        f"{cases} test cases against {stack.api_url}/openapi.json (positive and negative, "
        f"all checks, {MAX_EXAMPLES} examples per operation): 0 failures, 0 server errors"
    )
    FUZZ_REPORT.extend(line.strip() for line in summary)
    assert cases >= 100


def _cases(report: Path, output: str) -> int:
    if report.exists():
        data = json.loads(report.read_text())
        for path in (("summary", "test_cases", "total"), ("test_cases", "total")):
            node = data
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, int):
                return node
    match = re.search(r"(\d+) generated", output) or re.search(r"(\d[\d,]*) test cases", output)
    assert match, output[-2000:]
    return int(match[1].replace(",", ""))
