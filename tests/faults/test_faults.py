"""A 202 is kept through faults: a stream of writes (creates, updates of the same courses,
deletes, client retries with the same Idempotency-Key) goes through the HTTP API while one fault
is injected per scenario; afterwards PostgreSQL equals the model of what was accepted, Milvus holds
exactly one entity per live course at the same version, no task is stuck, nothing is lost or
applied twice. Each scenario prints one line of figures."""

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import asyncpg
import pytest

from devstack.stack import LocalStack, Process
from shared.settings import Settings
from tests.support import faults as harness
from tests.support.reports import FAULT_REPORT as REPORT
from tests.support.stack import PG_ADMIN_DSN, RUN_ID, Names, isolated_env, running_stack

WRITES = int(os.environ.get("COURSEWISE_FAULT_WRITES", "500"))
PACE_S = 0.02


@pytest.fixture(scope="module")
def faulty() -> Iterator[tuple[LocalStack, Settings, Names]]:
    names = Names(f"{RUN_ID}f")
    with isolated_env(names) as env, running_stack(env, "faults") as stack:
        # pydantic-settings types its own _-prefixed init options; these keys are all fields
        settings = Settings(**{k.removeprefix("COURSEWISE_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        yield stack, settings, names


def latest(stack: LocalStack, name: str) -> Process:
    return [p for p in stack.processes if p.name == name][-1]


def kill_worker_repeatedly(stack: LocalStack) -> Callable[[], None]:
    def action() -> None:
        for _ in range(3):
            time.sleep(5)
            worker = latest(stack, "worker")
            os.killpg(worker.popen.pid, signal.SIGKILL)  # mid-batch: before or after a commit
            worker.popen.wait(10)
            stack.start_worker()

    return action


def restart_rabbitmq() -> None:
    time.sleep(3)
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120)
    time.sleep(5)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
    subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=True, timeout=120)


def terminate_connections(names: Names) -> Callable[[], None]:
    async def terminate() -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                names.database,
            )
        finally:
            await connection.close()

    def action() -> None:
        for _ in range(5):
            time.sleep(2)
            asyncio.run(terminate())

    return action


def stop_milvus_for_a_while(stack: LocalStack) -> Callable[[], None]:
    def action() -> None:
        time.sleep(3)
        milvus = latest(stack, "milvus")
        milvus.stop()
        time.sleep(8)
        stack.start_milvus(stack.var_dir / "milvus-data")

    return action


SCENARIOS = {
    "worker SIGKILL mid-batch": lambda stack, names: kill_worker_repeatedly(stack),
    "RabbitMQ restart": lambda stack, names: restart_rabbitmq,
    "PostgreSQL connections terminated": lambda stack, names: terminate_connections(names),
    "Milvus stopped and restarted": lambda stack, names: stop_milvus_for_a_while(stack),
}


def log_tails(stack: LocalStack, lines: int = 30) -> str:
    """Each process's last warnings and errors and the end of its log: what a scenario that
    failed leaves to diagnose it (the logs themselves are removed with the stack)."""
    found = []
    for log in sorted(stack.var_dir.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()
        alarms = [line for line in text if '"WARNING"' in line or '"ERROR"' in line]
        found.append(f"--- {log.name}: last warnings and errors")
        found += [line[:500] for line in alarms[-lines:]]
        found.append(f"--- {log.name}: last lines")
        found += [line[:500] for line in text[-lines:]]
    return "\n".join(found)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_accepted_writes_survive(faulty: tuple[LocalStack, Settings, Names], scenario: str) -> None:
    stack, settings, names = faulty
    prefix = "fault-" + "".join(c for c in scenario.split()[0].lower() if c.isalnum())
    writes = harness.plan(prefix, WRITES, seed=len(scenario))
    with stack.client() as api:
        fault = harness.in_background(SCENARIOS[scenario](stack, names))
        outcome = harness.drive(api, writes, PACE_S)
        fault.join(timeout=300)
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
    if outcome.rejected or lost or outcome.duplicated:
        print(log_tails(stack))  # pytest shows it with the failure

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
