"""A 202 is kept through faults: a stream of writes (creates, updates of the same courses,
deletes, client retries with the same Idempotency-Key) goes through the HTTP API while one fault
is injected per scenario; afterwards PostgreSQL equals the model of what was accepted, Milvus holds
exactly one entity per live course at the same version, no task is stuck, nothing is lost or
applied twice. Each scenario prints one line of figures.

The stack runs on a RabbitMQ node of this suite's own (tests/support/broker.py), so the broker
can be stopped, killed and starved without touching the machine's. When a scenario fails, what
is needed to diagnose it (stacks, broker channels, ledger) is printed and kept in a directory."""

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from devstack.stack import LocalStack, Process
from shared.settings import Settings
from tests.support import broker as own
from tests.support import faults as harness
from tests.support.broker import Broker, own_broker
from tests.support.diagnostics import capture
from tests.support.reports import FAULT_REPORT as REPORT
from tests.support.stack import PG_ADMIN_DSN, RUN_ID, Names, isolated_env, running_stack

WRITES = int(os.environ.get("COURSEWISE_FAULT_WRITES", "300"))
PACE_S = 0.02

pytestmark = pytest.mark.skipif(not own.available(), reason="needs a RabbitMQ installation")


@dataclass
class Rig:
    stack: LocalStack
    settings: Settings
    names: Names
    broker: Broker


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    names = Names(f"{RUN_ID}f")
    with (
        own_broker(f"{RUN_ID}f") as broker,
        isolated_env(names, broker) as env,
        running_stack(env, "faults") as stack,
    ):
        # pydantic-settings types its own _-prefixed init options; these keys are all fields
        settings = Settings(**{k.removeprefix("COURSEWISE_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        yield Rig(stack, settings, names, broker)


def latest(stack: LocalStack, name: str) -> Process:
    return [p for p in stack.processes if p.name == name][-1]


def kill(process: Process) -> None:
    os.killpg(process.popen.pid, signal.SIGKILL)
    process.popen.wait(10)


def kill_worker_repeatedly(rig: Rig) -> None:
    for _ in range(3):
        time.sleep(5)
        kill(latest(rig.stack, "worker"))  # mid-batch: before or after a commit
        rig.stack.start_worker()


def restart_rabbitmq(rig: Rig) -> None:
    """A graceful stop of the node (it closes every connection), then a start."""
    time.sleep(3)
    rig.broker.stop()
    time.sleep(5)
    rig.broker.start()


def kill_rabbitmq(rig: Rig) -> None:
    """SIGKILL: no connection is closed, unconfirmed publishes get no answer; then the same
    node on the same data directory and ports."""
    time.sleep(3)
    rig.broker.kill()
    time.sleep(5)
    rig.broker.start()


def memory_alarm(rig: Rig, seconds: float = 60) -> None:
    """The broker blocks every publishing connection (flow control) while its memory is over
    the watermark: confirms stop coming, consumers still receive."""
    time.sleep(3)
    rig.broker.ctl("set_vm_memory_high_watermark", "absolute", "10MB")
    try:
        time.sleep(seconds)
    finally:
        rig.broker.ctl("set_vm_memory_high_watermark", "0.4")


def terminate_connections(rig: Rig) -> None:
    async def terminate() -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                rig.names.database,
            )
        finally:
            await connection.close()

    for _ in range(5):
        time.sleep(2)
        asyncio.run(terminate())


def stop_milvus_for_a_while(rig: Rig) -> None:
    time.sleep(3)
    latest(rig.stack, "milvus").stop()
    time.sleep(8)
    rig.stack.start_milvus(rig.stack.var_dir / "milvus-data")


def kill_api(rig: Rig) -> None:
    """SIGKILL to every API process with writes in flight (several clients at once): a write may
    be recorded and not published, or published and not answered; clients retry with their key
    against the restarted API."""
    time.sleep(4)
    kill(latest(rig.stack, "api"))
    time.sleep(2)
    rig.stack.start_api()


def kill_beat(rig: Rig) -> None:
    """Beat schedules the sweeps: killed (its schedule file mid-write, maybe) and restarted."""
    for _ in range(2):
        time.sleep(4)
        kill(latest(rig.stack, "beat"))
        time.sleep(3)
        rig.stack.start_beat()


# scenario -> (fault, concurrent clients)
SCENARIOS: dict[str, tuple[Callable[[Rig], None], int]] = {
    "worker SIGKILL mid-batch": (kill_worker_repeatedly, 1),
    "RabbitMQ restart": (restart_rabbitmq, 1),
    "PostgreSQL connections terminated": (terminate_connections, 1),
    "Milvus stopped and restarted": (stop_milvus_for_a_while, 1),
    "RabbitMQ memory alarm 60 s": (memory_alarm, 4),
    "RabbitMQ SIGKILL": (kill_rabbitmq, 1),
    "API SIGKILL with writes in flight": (kill_api, 4),
    "beat SIGKILL": (kill_beat, 1),
}


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
