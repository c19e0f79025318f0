"""Drives a stream of writes through the HTTP API while a fault is injected, then checks the
outcome against an in-memory model of what was accepted. The faults themselves are at the end
(the fault suite runs each once; bench/soak.py draws them at random)."""

import asyncio
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from devstack.stack import LocalStack, Process
from shared.catalog.reconcile import reconcile
from shared.milvus import connect
from shared.settings import Settings
from tests.support.broker import Broker
from tests.support.stack import PG_ADMIN_DSN, Names
from tests.support.stores import stores


@dataclass
class Write:
    method: str
    path: str
    body: Any
    key: str
    course_id: str
    title: str | None  # None: a delete


@dataclass
class Outcome:
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> task id
    duplicated: int = 0  # a retried key that produced a second task
    rejected: int = 0  # never answered 202 despite client retries (not part of the model)
    unexpected: list[str] = field(default_factory=list)  # 4xx answers to a valid write
    writes: list[Write] = field(default_factory=list)


def course(course_id: str, title: str) -> dict[str, Any]:
    return {
        "id": course_id,
        "title": title,
        "description": f"{title}: practical lessons on topic {title.rsplit('-', 1)[-1]}.",
        "level": "beginner",
        "skills": ["faults"],
    }


def plan(prefix: str, count: int, seed: int) -> list[Write]:
    """Creates, updates of the same courses, deletes, and repeats of earlier requests with
    their idempotency key (a client retrying)."""
    rng = random.Random(seed)
    ids = [f"{prefix}:{i}" for i in range(max(10, count // 8))]
    writes: list[Write] = []
    for n in range(count):
        roll = rng.random()
        if writes and roll < 0.1:
            writes.append(rng.choice(writes))  # the same request again, same key
            continue
        course_id = rng.choice(ids)
        if roll < 0.25:
            path = f"/v1/courses/{course_id}"
            writes.append(Write("DELETE", path, None, uuid.uuid4().hex, course_id, None))
        else:
            title = f"course {n}"
            body = course(course_id, title)
            writes.append(Write("POST", "/v1/courses", body, uuid.uuid4().hex, course_id, title))
    return writes


def send(api: httpx.Client, write: Write, patience_s: float = 300) -> str | None:
    """A well-behaved client: retries on errors and 5xx with the same Idempotency-Key, for up to
    `patience_s` (an API process killed and restarted takes its model load to answer again)."""
    deadline = time.monotonic() + patience_s
    attempt = 0
    while True:
        try:
            response = api.request(
                write.method, write.path, json=write.body, headers={"Idempotency-Key": write.key}
            )
            if response.status_code == 202:
                return str(response.json()["task_id"])
            if response.status_code < 500:
                raise AssertionError(f"{write.method} {write.path}: {response.text}")
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(min(0.2 * 2**attempt, 2.0))
        attempt += 1


def drive(
    connect: Callable[[], httpx.Client], writes: list[Write], pace_s: float, clients: int = 1
) -> Outcome:
    """Send `writes` from `clients` concurrent clients (several writes in flight at once), each
    pausing `pace_s` between its writes. A repeated write (same key) is a client's retry."""
    outcome = Outcome()
    lock = threading.Lock()
    queue = list(reversed(writes))

    def client() -> None:
        with connect() as api:
            while True:
                with lock:
                    if not queue:
                        return
                    write = queue.pop()
                try:
                    task_id = send(api, write)
                except AssertionError as exc:
                    with lock:
                        outcome.unexpected.append(str(exc))
                    continue
                with lock:
                    if task_id is None:
                        outcome.rejected += 1
                        continue
                    known = outcome.accepted.get(write.key)
                    if known is None:
                        outcome.accepted[write.key] = task_id
                        outcome.writes.append(write)
                    elif known != task_id:
                        outcome.duplicated += 1
                time.sleep(pace_s)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


class Fault(threading.Thread):
    """A fault injected in the background; `error` is what it raised, if anything."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.action = action
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.action()
        except BaseException as exc:
            self.error = exc


def in_background(action: Callable[[], None]) -> Fault:
    fault = Fault(action)
    fault.start()
    return fault


def drain(api: httpx.Client, task_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Wait until every task is finished; failed ones are retried once (the operator's move)."""
    deadline = time.monotonic() + timeout
    tasks: dict[str, dict[str, Any]] = {}
    retried: set[str] = set()
    pending = set(task_ids)
    while pending and time.monotonic() < deadline:
        for task_id in list(pending):
            try:
                task = api.get(f"/v1/tasks/{task_id}").json()
            except httpx.HTTPError:
                continue
            tasks[task_id] = task
            if task["status"] == "succeeded":
                pending.discard(task_id)
            elif task["status"] == "failed" and task_id not in retried:
                retried.add(task_id)
                api.post(f"/v1/tasks/{task_id}/retry")
            elif task["status"] == "failed":
                pending.discard(task_id)
        time.sleep(0.5)
    return tasks


def expected_state(
    outcome: Outcome, tasks: dict[str, dict[str, Any]]
) -> dict[str, tuple[str, int]]:
    """The live courses after applying every accepted write once, in acceptance order."""
    ordered = sorted(
        (tasks[outcome.accepted[w.key]]["seq"], w)
        for w in outcome.writes
        if w.key in outcome.accepted
    )
    state: dict[str, tuple[str, int]] = {}
    for seq, write in ordered:
        if write.title is None:
            state.pop(write.course_id, None)
        else:
            state[write.course_id] = (write.title, seq)
    return state


def actual_state(api: httpx.Client, prefix: str) -> dict[str, tuple[str, int]]:
    state: dict[str, tuple[str, int]] = {}
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/courses", params=params).json()
        for item in page["items"]:
            if item["id"].startswith(prefix + ":"):
                state[item["id"]] = (item["title"], item["version"])
        cursor = page["next_cursor"]
        if cursor is None:
            return state


def milvus_state(settings: Settings, prefix: str) -> dict[str, int]:
    client = connect(settings)
    try:
        rows = client.query(
            settings.milvus_collection,
            filter=f'id like "{prefix}:%"',
            output_fields=["version"],
            limit=16384,
        )
    finally:
        client.close()
    return {row["id"]: int(row["version"]) for row in rows}


def reconcile_finds(settings: Settings) -> int:
    """What a reconciliation would still repair (0 when PostgreSQL and Milvus agree)."""

    async def run() -> int:
        async with stores(settings) as s:
            report = await reconcile(s.sessionmaker, s.milvus, s.collection, s.indexer)
            return report.missing + report.stale + report.orphaned + report.unindexed

    return asyncio.run(run())


# --- the faults -------------------------------------------------------------------------
@dataclass
class Rig:
    stack: LocalStack
    settings: Settings
    names: Names
    broker: Broker


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


def hang_sweeper(rig: Rig, seconds: float = 45) -> None:
    """SIGSTOP: the sweeper alive but silent, as if hung (whatever it holds, it keeps holding),
    while the broker restarts under the API, so writes whose publish failed are left to it; then
    SIGCONT: it must catch up. Nothing restarts it meanwhile (the tests run no supervisor)."""
    time.sleep(3)
    sweeper = latest(rig.stack, "sweeper")
    started = time.monotonic()
    os.killpg(sweeper.popen.pid, signal.SIGSTOP)
    try:
        rig.broker.stop()
        time.sleep(3)
        rig.broker.start()
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    finally:
        os.killpg(sweeper.popen.pid, signal.SIGCONT)


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
    "sweeper hung (SIGSTOP) and resumed": (hang_sweeper, 2),
}
