"""A soak under random faults: mixed write traffic (single and bulk course writes, patches,
deletes, interactions, client retries with their Idempotency-Key) at no more than
`--writes-per-s` alongside reads, for `--minutes`, while a fault drawn at random from the fault
suite's (tests/support/faults.py) is injected every 30-90 s. It runs its own stack on its own
RabbitMQ node (tests/support/broker.py), so the broker can be killed.

It reports what was accepted, applied, failed with a reason, lost (never finished) and
duplicated (a retried key that made a second task, or an effect counted twice); the longest any
write stayed queued (the ledger's oldest queued task, sampled every 2 s, and each task's wait
from enqueued to started); and how long after the last fault every write accepted before its end
was finished. Goals: 0 lost, 0 duplicated, nothing queued longer than 5 minutes.

    .venv/bin/python -m bench.soak --minutes 20
"""

import argparse
import asyncio
import json
import os
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from shared.settings import Settings
from tests.support import faults as harness
from tests.support.broker import own_broker
from tests.support.diagnostics import capture
from tests.support.faults import SCENARIOS, Rig, Write
from tests.support.stack import PG_ADMIN_DSN, Names, isolated_env, running_stack

QUEUED_BOUND_S = 300.0
STABLE = [f"soak:stable-{i}" for i in range(10)]  # interactions name these; never changed
CHURN = [f"soak:c{i}" for i in range(150)]  # written, patched and deleted at random
LEARNERS = [f"soak-learner-{i}" for i in range(40)]
TYPES = ["view", "bookmark", "enroll", "complete"]


@dataclass
class Sent:
    write: Write
    kind: str  # upsert | bulk | patch | delete | interactions
    courses: list[tuple[str, str, str | None]]  # (op, course id, title) for the model
    interactions: list[tuple[str, str]]  # (learner, type)


@dataclass
class Fault:
    name: str
    started: datetime
    ended: datetime | None = None
    error: str | None = None


@dataclass
class Soak:
    sent: list[Sent] = field(default_factory=list)  # accepted, first sending of each key
    task_of: dict[str, str] = field(default_factory=dict)  # idempotency key -> task id
    duplicated_keys: int = 0
    rejected: int = 0
    unexpected: list[str] = field(default_factory=list)
    retries: int = 0
    reads_ok: int = 0
    reads_failed: int = 0
    faults: list[Fault] = field(default_factory=list)
    oldest_queued_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def course(course_id: str, title: str) -> dict[str, Any]:
    return harness.course(course_id, title)


class Pacer:
    """At most `rate` writes per second over all the writers together."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            slot = max(self.next, time.monotonic())
            self.next = slot + self.interval
        time.sleep(max(0.0, slot - time.monotonic()))


def new_write(rng: random.Random, n: int) -> Sent:
    roll = rng.random()
    key = uuid.uuid4().hex
    if roll < 0.35:
        cid, title = rng.choice(CHURN), f"soak {n}"
        write = Write("POST", "/v1/courses", course(cid, title), key, cid, title)
        return Sent(write, "upsert", [("upsert", cid, title)], [])
    if roll < 0.45:
        ids = rng.sample(CHURN, rng.randint(2, 20))
        items = [(cid, f"soak {n}.{i}") for i, cid in enumerate(ids)]
        body = [course(cid, title) for cid, title in items]
        write = Write("POST", "/v1/courses/bulk", body, key, "", None)
        return Sent(write, "bulk", [("upsert", cid, title) for cid, title in items], [])
    if roll < 0.62:
        cid, title = rng.choice(CHURN), f"soak {n} patched"
        write = Write("PATCH", f"/v1/courses/{cid}", {"title": title}, key, cid, title)
        return Sent(write, "patch", [("patch", cid, title)], [])
    if roll < 0.75:
        cid = rng.choice(CHURN)
        write = Write("DELETE", f"/v1/courses/{cid}", None, key, cid, None)
        return Sent(write, "delete", [("delete", cid, None)], [])
    pairs = [(rng.choice(LEARNERS), rng.choice(TYPES)) for _ in range(rng.randint(1, 5))]
    body = [
        {"user_id": learner, "course_id": rng.choice(STABLE), "type": kind}
        for learner, kind in pairs
    ]
    write = Write("POST", "/v1/interactions", body, key, "", None)
    return Sent(write, "interactions", [], pairs)


def writer(
    rig: Rig, state: Soak, pacer: Pacer, seed: int, until: float, counter: list[int]
) -> None:
    rng = random.Random(seed)
    with rig.stack.client(timeout=30) as api:
        while time.monotonic() < until:
            pacer.wait()
            with state.lock:
                counter[0] += 1
                n = counter[0]
                retry = state.sent and rng.random() < 0.1
                sent = rng.choice(state.sent) if retry else new_write(rng, n)
            try:
                task_id = harness.send(api, sent.write)
            except AssertionError as exc:
                with state.lock:
                    state.unexpected.append(str(exc))
                continue
            with state.lock:
                if task_id is None:
                    state.rejected += 1
                    continue
                known = state.task_of.get(sent.write.key)
                if known is None:
                    state.task_of[sent.write.key] = task_id
                    state.sent.append(sent)
                else:
                    state.retries += 1
                    state.duplicated_keys += known != task_id


def reader(rig: Rig, state: Soak, seed: int, until: float, per_s: float = 4.0) -> None:
    rng = random.Random(seed)
    with rig.stack.client(timeout=30) as api:
        while time.monotonic() < until:
            roll = rng.random()
            params: dict[str, str | int]
            if roll < 0.5:
                path, params = f"/v1/courses/{rng.choice(STABLE + CHURN)}", {}
            elif roll < 0.8:
                path, params = "/v1/courses", {"limit": 20}
            else:
                path, params = "/v1/search", {"q": f"soak {rng.randint(0, 999)}", "limit": 10}
            try:
                ok = api.get(path, params=params).status_code in (200, 404)
            except httpx.HTTPError:
                ok = False
            with state.lock:
                if ok:
                    state.reads_ok += 1
                else:
                    state.reads_failed += 1
            time.sleep(1.0 / per_s)


def injector(rig: Rig, state: Soak, seed: int, stop: threading.Event) -> None:
    rng = random.Random(seed)
    names = list(SCENARIOS)
    while not stop.wait(rng.uniform(30, 90)):
        name = rng.choice(names)
        fault = Fault(name, datetime.now(UTC))
        with state.lock:
            state.faults.append(fault)
        print(f"{fault.started:%H:%M:%S} fault: {name}", flush=True)
        try:
            SCENARIOS[name][0](rig)
        except Exception as exc:
            fault.error = repr(exc)
        fault.ended = datetime.now(UTC)


async def _fetch(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


def fetch(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(database, sql, *args))


def monitor(rig: Rig, state: Soak, stop: threading.Event) -> None:
    """The oldest queued task's age, as the alert sees it, every 2 s."""
    sql = "SELECT extract(epoch FROM now() - min(enqueued_at)) FROM tasks WHERE status = 'queued'"
    while not stop.wait(2.0):
        try:
            age = fetch(rig.names.database, sql)[0][0]
        except Exception:
            continue  # PostgreSQL connections are one of the faults
        if age is not None:
            with state.lock:
                state.oldest_queued_s = max(state.oldest_queued_s, float(age))


def ledger(rig: Rig, task_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = fetch(
        rig.names.database,
        "SELECT id::text AS id, seq, status, error, enqueued_at, started_at, finished_at "
        "FROM tasks WHERE id = ANY($1::uuid[])",
        task_ids,
    )
    return {row["id"]: row for row in rows}


def drain(rig: Rig, task_ids: list[str], timeout: float) -> dict[str, asyncpg.Record]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = ledger(rig, task_ids)
        done = sum(1 for t in tasks.values() if t["status"] in ("succeeded", "failed"))
        if done == len(task_ids) or time.monotonic() > deadline:
            return tasks
        time.sleep(2)


def expected(
    state: Soak, tasks: dict[str, asyncpg.Record]
) -> tuple[dict[str, tuple[str, int]], Counter[tuple[str, str]]]:
    """Courses (title, version) and interaction counts after applying, in ledger order, every
    write whose task succeeded."""
    courses: dict[str, tuple[str, int]] = {}
    interactions: Counter[tuple[str, str]] = Counter()
    done = [(tasks[state.task_of[s.write.key]], s) for s in state.sent]
    for task, sent in sorted(done, key=lambda pair: int(pair[0]["seq"])):
        if task["status"] != "succeeded":
            continue
        seq = int(task["seq"])
        for op, cid, title in sent.courses:
            if op == "delete":
                courses.pop(cid, None)
            elif op == "upsert" or cid in courses:
                courses[cid] = (str(title), seq)
        interactions.update(sent.interactions)
    return courses, interactions


def actual(rig: Rig) -> tuple[dict[str, tuple[str, int]], Counter[tuple[str, str]]]:
    with rig.stack.client(timeout=60) as api:
        courses = harness.actual_state(api, "soak")
    rows = fetch(
        rig.names.database,
        "SELECT learner_id, type, count(*) AS n FROM interactions GROUP BY 1, 2",
    )
    return courses, Counter({(r["learner_id"], r["type"]): int(r["n"]) for r in rows})


def seed_stable(rig: Rig, state: Soak) -> None:
    """The courses interactions name, applied before the traffic starts."""
    body = [course(cid, f"stable {cid}") for cid in STABLE]
    write = Write("POST", "/v1/courses/bulk", body, uuid.uuid4().hex, "", None)
    with rig.stack.client(timeout=60) as api:
        task_id = harness.send(api, write)
        assert task_id is not None, "the stable courses were not accepted"
        state.task_of[write.key] = task_id
        state.sent.append(Sent(write, "bulk", [("upsert", c, f"stable {c}") for c in STABLE], []))
        tasks = drain(rig, [task_id], timeout=300)
        assert tasks[task_id]["status"] == "succeeded", tasks[task_id]


def soak(
    rig: Rig,
    minutes: float,
    seed: int,
    writes_per_s: float,
    clients: int,
    drain_minutes: float = 10,
) -> dict[str, Any]:
    """Lost: accepted writes still unfinished `drain_minutes` after the traffic stopped."""
    state = Soak()
    seed_stable(rig, state)
    started = time.monotonic()
    until = started + minutes * 60
    stop = threading.Event()
    drained = threading.Event()  # the monitor watches the drain too
    pacer = Pacer(writes_per_s)
    counter = [0]
    threads = [
        threading.Thread(target=writer, args=(rig, state, pacer, seed + i, until, counter))
        for i in range(clients)
    ]
    threads += [threading.Thread(target=reader, args=(rig, state, seed + 100, until))]
    background = [
        threading.Thread(target=injector, args=(rig, state, seed + 200, stop)),
        threading.Thread(target=monitor, args=(rig, state, drained)),
    ]
    for thread in threads + background:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join()
    traffic_s = time.monotonic() - started
    stop.set()
    background[0].join(timeout=600)  # the fault running now ends with its recovery
    traffic_done = datetime.now(UTC)

    task_ids = list(dict.fromkeys(state.task_of.values()))
    tasks = drain(rig, task_ids, timeout=drain_minutes * 60)
    want_courses, want_interactions = expected(state, tasks)
    deadline = time.monotonic() + 180
    while True:
        got_courses, got_interactions = actual(rig)
        in_milvus = harness.milvus_state(rig.settings, "soak")
        converged = (
            got_courses == want_courses
            and got_interactions == want_interactions
            and in_milvus == {k: v[1] for k, v in want_courses.items()}
        )
        if converged or time.monotonic() > deadline:
            break
        time.sleep(2)
    drained.set()
    background[1].join(timeout=10)
    drained_s = (datetime.now(UTC) - traffic_done).total_seconds()

    finished = [t for t in tasks.values() if t["status"] in ("succeeded", "failed")]
    failed = [t for t in finished if t["status"] == "failed"]
    reasons = Counter(str(t["error"] or "")[:60] for t in failed)
    waits = [
        ((t["started_at"] or t["finished_at"]) - t["enqueued_at"]).total_seconds() for t in finished
    ]
    faults_ended = [f.ended for f in state.faults if f.ended is not None]
    last_fault = max(faults_ended) if faults_ended else None
    convergence_s = None
    if last_fault is not None:
        before = [
            t["finished_at"]
            for t in finished
            if t["enqueued_at"] <= last_fault and t["finished_at"]
        ]
        convergence_s = max(0.0, (max(before) - last_fault).total_seconds()) if before else 0.0
    duplicated_effects = sum(
        max(0, got_interactions[k] - want_interactions[k]) for k in got_interactions
    )
    return {
        "minutes": round(traffic_s / 60, 1),
        "writes_per_s_cap": writes_per_s,
        "accepted": len(task_ids),
        "by_kind": dict(Counter(s.kind for s in state.sent)),
        "client_retries_same_key": state.retries,
        "applied": len(finished) - len(failed),
        "failed_with_reason": sum(1 for t in failed if t["error"]),
        "failed_without_reason": sum(1 for t in failed if not t["error"]),
        "failure_reasons": dict(reasons),
        "lost": len(task_ids) - len(finished),  # unfinished after the drain
        "drain_minutes": drain_minutes,
        "duplicated": state.duplicated_keys + duplicated_effects,
        "rejected": state.rejected,
        "unexpected_4xx": state.unexpected[:5],
        "state_matches_model": converged,
        "longest_queued_s": round(max([state.oldest_queued_s, *waits]), 1),
        "longest_queued_sampled_s": round(state.oldest_queued_s, 1),
        "faults": [
            {
                "fault": f.name,
                "at_s": round((f.started - tasks_start(tasks)).total_seconds()),
                "error": f.error,
            }
            for f in state.faults
        ],
        "convergence_after_last_fault_s": None
        if convergence_s is None
        else round(convergence_s, 1),
        "drained_after_traffic_s": round(drained_s, 1),
        "reads": {"ok": state.reads_ok, "failed": state.reads_failed},
        **deliveries(rig),
        "load_average": os.getloadavg(),
    }


def deliveries(rig: Rig) -> dict[str, int]:
    """From the logs: messages a worker took for a task already finished (a duplicate: a
    redelivery or a re-publish), and tasks the sweeper re-published."""
    redundant = republished = 0
    for log in rig.stack.var_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        redundant += text.count("is unknown or already finished")
        republished += sum(int(n) for n in re.findall(r"re-published (\d+) task", text))
    return {"redundant_deliveries": redundant, "sweeper_republished": republished}


def tasks_start(tasks: dict[str, asyncpg.Record]) -> datetime:
    return min((t["enqueued_at"] for t in tasks.values()), default=datetime.now(UTC))


def ok(result: dict[str, Any]) -> bool:
    return bool(
        result["lost"] == 0
        and result["duplicated"] == 0
        and result["failed_without_reason"] == 0
        and result["rejected"] == 0
        and not result["unexpected_4xx"]
        and result["state_matches_model"]
        and result["longest_queued_s"] <= QUEUED_BOUND_S
        and not any(f["error"] for f in result["faults"])
    )


def run(
    minutes: float,
    seed: int = 18,
    writes_per_s: float = 20,
    clients: int = 4,
    drain_minutes: float = 10,
) -> dict[str, Any]:
    run_id = "soak" + uuid.uuid4().hex[:6]
    names = Names(run_id)
    with (
        own_broker(run_id) as broker,
        isolated_env(names, broker) as env,
        running_stack(env, "soak") as stack,
    ):
        # pydantic-settings types its own _-prefixed init options; these keys are all fields
        settings = Settings(**{k.removeprefix("COURSEWISE_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        rig = Rig(stack, settings, names, broker)
        try:
            result = soak(rig, minutes, seed, writes_per_s, clients, drain_minutes)
        except BaseException:
            print(capture(stack, broker, names, "soak"), file=sys.stderr)
            raise
        if not ok(result):
            print(capture(stack, broker, names, "soak"), file=sys.stderr)
        return result


def describe(result: dict[str, Any]) -> str:
    return (
        f"soak {result['minutes']} min (≤ {result['writes_per_s_cap']} writes/s): "
        f"accepted {result['accepted']}, applied {result['applied']}, "
        f"failed-with-reason {result['failed_with_reason']}, lost {result['lost']}, "
        f"duplicated {result['duplicated']}, longest queued {result['longest_queued_s']} s, "
        f"{len(result['faults'])} faults, converged "
        f"{result['convergence_after_last_fault_s']} s after the last"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--writes-per-s", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--drain-minutes", type=float, default=10, help="after the traffic; unfinished = lost"
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    result = run(args.minutes, args.seed, args.writes_per_s, args.clients, args.drain_minutes)
    result["load_average_before"] = load_before
    print(json.dumps(result, indent=1, default=str))
    print(describe(result))
    return 0 if ok(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
