"""A 202 is kept through faults: a stream of writes (creates, updates of the same courses,
deletes, client retries with the same Idempotency-Key) goes through the HTTP API while one fault
is injected per scenario; afterwards PostgreSQL equals the model of what was accepted, Milvus holds
exactly one entity per live course at the same version, no task is stuck, nothing is lost or
applied twice. Each scenario prints one line of figures.

The stack runs on a RabbitMQ node of this suite's own (tests/support/broker.py), so the broker
can be stopped, killed and starved without touching the machine's. When a scenario fails, what
is needed to diagnose it (stacks, broker channels, ledger) is printed and kept in a directory."""

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.support import faults as harness
from tests.support.diagnostics import capture
from tests.support.faults import SCENARIOS, Rig
from tests.support.reports import FAULT_REPORT as REPORT

WRITES = int(os.environ.get("COURSEWISE_FAULT_WRITES", "300"))
PACE_S = 0.02


def slug(scenario: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in scenario.lower()).strip("-")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_accepted_writes_survive(rig: Rig, scenario: str) -> None:
    try:
        run_scenario(rig, scenario)
    except BaseException:
        # While the failure is still there: stacks of every process, the broker's channels,
        # the ledger; kept in a directory whose name is the first line.
        print(capture(rig.stack, rig.broker, rig.names, slug(scenario)))
        raise


def run_scenario(rig: Rig, scenario: str) -> None:
    stack, settings = rig.stack, rig.settings
    action, clients = SCENARIOS[scenario]
    prefix = "fault-" + slug(scenario)
    writes = harness.plan(prefix, WRITES, seed=len(scenario))
    with stack.client() as api:
        fault = harness.in_background(lambda: action(rig))
        outcome = harness.drive(stack.client, writes, PACE_S, clients=clients)
        fault.join(timeout=300)
        assert not fault.is_alive(), "the fault did not end"
        assert fault.error is None, f"injecting the fault failed: {fault.error!r}"
        stream_done = time.monotonic()

        task_ids = list(dict.fromkeys(outcome.accepted.values()))
        tasks = harness.drain(api, task_ids, timeout=420)
        expected = harness.expected_state(outcome, tasks)
        deadline = time.monotonic() + 120
        while True:
            actual = harness.actual_state(api, prefix)
            in_milvus = harness.milvus_state(settings, prefix)
            converged = actual == expected and in_milvus == {k: v[1] for k, v in expected.items()}
            if converged or time.monotonic() > deadline:
                break
            time.sleep(1)
        converged_s = time.monotonic() - stream_done

    succeeded = sum(1 for t in tasks.values() if t["status"] == "succeeded")
    failed = [t for t in tasks.values() if t["status"] == "failed"]
    lost = len(task_ids) - succeeded - len(failed)
    line = (
        f"{scenario}: accepted {len(task_ids)}, applied {succeeded}, "
        f"failed-with-reason {len(failed)}, lost {lost}, duplicated {outcome.duplicated}, "
        f"converged in {converged_s:.1f} s"
    )
    REPORT.append(line)
    print(line)

    assert not outcome.unexpected, outcome.unexpected[:5]
    assert outcome.rejected == 0, f"{outcome.rejected} write(s) never answered 202"
    assert lost == 0, [t for t in tasks.values() if t["status"] not in ("succeeded", "failed")]
    assert outcome.duplicated == 0
    assert all(t["error"] for t in failed)
    assert not failed, [t["error"] for t in failed]
    assert actual == expected
    assert in_milvus == {course_id: version for course_id, (_, version) in expected.items()}
    assert harness.reconcile_finds(settings) == 0
    # One event loop and one pool per worker child, made after fork, across every task so far.
    worker_logs = [p.log.read_text(errors="replace") for p in stack.processes if p.name == "worker"]
    assert not any("attached to a different loop" in log for log in worker_logs)


def test_a_failure_leaves_what_is_needed_to_diagnose_it(rig: Rig) -> None:
    """What a failing scenario prints and keeps: each Python process's stacks, the broker's
    channels with their unconfirmed counts, and the ledger by status."""
    text = capture(rig.stack, rig.broker, rig.names, "check")
    kept = text.splitlines()[0].removeprefix("diagnosis kept in ")
    try:
        for name in ("api", "worker", "beat"):
            assert f"--- {name}.log: stacks" in text, name
        assert "Current thread" in text or "Thread 0x" in text
        channels = text.split("--- broker channels\n", 1)[1].split("\n---", 1)[0]
        assert channels.strip() and "Error" not in channels, channels  # one row per channel
        assert "status=succeeded" in text
        assert (Path(kept) / "diagnosis.txt").read_text() == text
    finally:
        shutil.rmtree(kept, ignore_errors=True)
