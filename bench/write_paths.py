"""Write paths against their limits: accepting `POST /v1/courses` (202) next to raw confirmed
publishes to the same RabbitMQ, and freshness (202 until searchable) at steady write rates set
from the raw encode rate measured in the same run.

    .venv/bin/python -m bench.write_paths [--seconds 60] [--step-seconds 20] [--json]

runs the freshness part alone on a stack of its own (2 API processes, one worker).
"""

import argparse
import asyncio
import json
import time
from typing import Any

import httpx
from pymilvus import AsyncMilvusClient

from bench.environment import (
    BenchStack,
    CpuMeter,
    bare_endpoints,
    cpu_seconds,
    percentile,
    settle,
    wrk,
)
from bench.limits import run_publish
from shared.catalog.schemas import CourseIn, embedding_text
from shared.embedding import Embedder
from shared.milvus import client_kwargs, literal

# Freshness goal: p99 from 202 to searchable under this many seconds.
FRESH_P99_S = 2.0


def accept(
    bench: BenchStack,
    course: dict[str, Any],
    *,
    seconds: float,
    connections: int,
    api_workers: int,
) -> dict[str, Any]:
    """Accepted writes/s at saturation (the worker is not running: this is the accept path
    alone; the queued tasks are dropped with the vhost) next to raw confirmed publishes/s from
    as many processes as the API has. Alongside, where the cores go: the same body validated
    by a bare FastAPI endpoint (the framework's own ceiling), and the cores used by each
    process during each run."""
    stack = bench.stack
    url = bench.env["COURSEWISE_BROKER_URL"]
    body = json.dumps(course)
    settle(stack)
    meter = CpuMeter(stack)
    before = run_publish(url, seconds, api_workers, threads=connections // api_workers)
    raw_cores = meter.cores()
    headers = {
        "Authorization": f"Bearer {stack.api_key}",
        "Content-Type": "application/json",
    }
    post: dict[str, Any] = {"method": "POST", "body": body, "headers": headers}
    with bare_endpoints(stack, api_workers) as bare_url:
        wrk(bare_url + "/v1/courses", seconds=2, connections=connections, **post)  # warm up
        settle(stack)
        meter = CpuMeter(stack)
        bare = wrk(bare_url + "/v1/courses", seconds=seconds, connections=connections, **post)
        bare_cores = meter.cores()
    wrk(stack.api_url + "/v1/courses", seconds=2, connections=connections, **post)  # warm up
    settle(stack)
    meter = CpuMeter(stack)
    api = wrk(stack.api_url + "/v1/courses", seconds=seconds, connections=connections, **post)
    api_cores = meter.cores()
    settle(stack)
    after = run_publish(url, seconds, api_workers, threads=connections // api_workers)
    raw = (before["per_s"] + after["per_s"]) / 2
    return {
        "api": {
            "per_s": api.per_s,
            "requests": api.requests,
            "errors": api.errors,
            "p50_ms": api.p50_ms,
            "p99_ms": api.p99_ms,
        },
        "bare_per_s": bare.per_s,
        "bare_ratio": bare.per_s / raw,
        "raw_before_per_s": before["per_s"],
        "raw_after_per_s": after["per_s"],
        "raw_per_s": raw,
        "ratio": api.per_s / raw,
        "cores_busy": api_cores,
        "raw_cores": raw_cores,
        "bare_cores": bare_cores,
    }


async def _freshness(
    bench: BenchStack, courses: list[dict[str, Any]], rate: float, seconds: float
) -> dict[str, Any]:
    settings = bench.settings
    milvus = AsyncMilvusClient(**client_kwargs(settings))
    accepted: dict[str, float] = {}
    visible: dict[str, float] = {}
    errors = 0
    total = int(rate * seconds)
    headers = {"Authorization": f"Bearer {bench.stack.api_key}"}
    done = asyncio.Event()

    async def writer(client: httpx.AsyncClient) -> None:
        nonlocal errors
        start = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()

        async def post(course: dict[str, Any]) -> None:
            nonlocal errors
            response = await client.post("/v1/courses", json=course)
            if response.status_code == 202:
                accepted[course["id"]] = time.perf_counter()
            else:
                errors += 1

        for n, course in enumerate(courses[:total]):
            # A steady rate: the n-th write is sent at n / rate, whatever the answers take.
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            task = asyncio.create_task(post(course))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        done.set()

    async def watcher() -> None:
        # Searchable = in the collection searches read (strong consistency), polled every 50 ms.
        while not (done.is_set() and len(visible) >= len(accepted)):
            waiting = [i for i in accepted if i not in visible]
            if waiting:
                expression = f"id in [{', '.join(literal(i) for i in waiting)}]"
                rows = await milvus.query(
                    settings.milvus_collection, filter=expression, output_fields=["id"]
                )
                now = time.perf_counter()
                for row in rows:
                    visible.setdefault(row["id"], now)
            await asyncio.sleep(0.05)

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=bench.stack.api_url, headers=headers, timeout=30, limits=limits
    ) as client:
        await asyncio.wait_for(asyncio.gather(writer(client), watcher()), seconds + 300)
    await milvus.close()
    delays = [visible[i] - accepted[i] for i in accepted if i in visible]
    return {
        "rate": rate,
        "seconds": seconds,
        "accepted": len(accepted),
        "visible": len(delays),
        "errors": errors,
        "p50_s": percentile(delays, 0.5),
        "p90_s": percentile(delays, 0.9),
        "p99_s": percentile(delays, 0.99),
        "max_s": max(delays) if delays else float("nan"),
    }


def freshness(
    bench: BenchStack, courses: list[dict[str, Any]], *, rate: float, seconds: float
) -> dict[str, Any]:
    """Time from 202 to searchable for distinct new courses written at a steady `rate`/s (each
    needs an embedding: new ids and new texts), with the worker running."""
    stack = bench.stack
    settle(stack)
    cpu_before = cpu_seconds(stack)
    started = time.perf_counter()
    result = asyncio.run(_freshness(bench, courses, rate, seconds))
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(stack)
    result["cores_busy"] = {k: (cpu_after[k] - cpu_before[k]) / elapsed for k in cpu_after}
    return result


def fresh_courses(courses: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """New courses with new texts (so each one is embedded), from real ones."""
    return [
        {
            **course,
            "id": f"{course['id'][:150]}-fresh-{tag}-{n}",
            "title": f"{course['title']} ({tag} {n})",
        }
        for n, course in enumerate(courses)
    ]


def raw_encode(bench: BenchStack, courses: list[dict[str, Any]]) -> dict[str, Any]:
    """Courses/s of one `encode` call over the texts of `courses` in this process, with the
    settings the worker runs (its backend and, from the host's calibration cache, its
    precision), while the stack is quiet."""
    embedder = Embedder(bench.settings)
    texts = [embedding_text(CourseIn.model_validate(c).to_record()) for c in courses]
    embedder.encode(texts[:32])  # warm up
    settle(bench.stack)
    started = time.perf_counter()
    embedder.encode(texts)
    per_s = len(texts) / (time.perf_counter() - started)
    return {"per_s": per_s, "backend": embedder.backend, "precision": embedder.precision}


def _met(run: dict[str, Any]) -> bool:
    return bool(run["visible"] == run["accepted"] > 0 and run["p99_s"] < FRESH_P99_S)


def capacity(
    bench: BenchStack,
    courses: list[dict[str, Any]],
    *,
    seconds: float,
    step_seconds: float,
    fractions: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 1.0),
) -> dict[str, Any]:
    """Freshness at a steady half of the raw encode rate measured now (the goal: p99 < 2 s),
    then steady rates stepping up as fractions of it until p99 reaches 2 s: the highest
    fraction that held is the write capacity the service keeps fresh (goal: ≥ 0.8). Raw encode
    is measured again at the end (the machine's speed drifts; both are reported)."""
    raw = raw_encode(bench, courses[:300])
    tag = iter(range(1_000_000))
    half = freshness(
        bench, fresh_courses(courses, f"half{next(tag)}"), rate=0.5 * raw["per_s"], seconds=seconds
    )
    steps: list[dict[str, Any]] = []
    highest = 0.5 if _met(half) else None
    for fraction in fractions:
        run = freshness(
            bench,
            fresh_courses(courses, f"step{next(tag)}"),
            rate=fraction * raw["per_s"],
            seconds=step_seconds,
        )
        steps.append(run | {"fraction": fraction, "met": _met(run)})
        if not _met(run):
            break
        highest = fraction
    after = raw_encode(bench, courses[300:600] or courses[:300])
    return {
        "raw": raw,
        "raw_after_per_s": after["per_s"],
        "half": half | {"fraction": 0.5, "met": _met(half)},
        "steps": steps,
        "highest_fraction": highest,
    }


def capacity_table(c: dict[str, Any]) -> str:
    lines = [
        "| steady rate | writes/s | s | accepted | visible | p50 s | p90 s | p99 s | max s | "
        "p99 < 2 s | cores busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in [c["half"], *c["steps"]]:
        cores = ", ".join(f"{k} {v:.2f}" for k, v in run["cores_busy"].items())
        lines.append(
            f"| {run['fraction']:.1f} x raw | {run['rate']:.1f} | {run['seconds']:.0f} | "
            f"{run['accepted']} | {run['visible']} | {run['p50_s']:.2f} | {run['p90_s']:.2f} | "
            f"{run['p99_s']:.2f} | {run['max_s']:.2f} | {'yes' if run['met'] else 'no'} | "
            f"{cores} |"
        )
    return "\n".join(lines)


def _one_write_applied(bench: BenchStack, course: dict[str, Any]) -> None:
    with bench.stack.client(timeout=30) as api:
        response = api.post("/v1/courses", json=course)
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        deadline = time.monotonic() + 600
        while api.get(f"/v1/tasks/{task_id}").json()["status"] not in {"succeeded", "failed"}:
            if time.monotonic() > deadline:
                raise TimeoutError("the worker applied nothing in 600 s")
            time.sleep(0.5)


def main() -> None:
    from bench.environment import describe, machine, own_stack
    from bench.ingest import coursera

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60, help="the run at half of raw")
    parser.add_argument("--step-seconds", type=float, default=20, help="each step above it")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    unique = list({CourseIn.model_validate(c).id: c for c in coursera(None)}.values())
    with own_stack("fresh", keep_logs=args.keep_logs) as bench:
        bench.stack.start_api(workers=2, timeout=600)  # model loads are slow on a busy host
        bench.stack.start_worker()
        _one_write_applied(bench, unique[0])  # the worker has loaded (and calibrated) its model
        result = capacity(bench, unique, seconds=args.seconds, step_seconds=args.step_seconds)
    if args.json:
        print(json.dumps(result))
        return
    raw = result["raw"]
    print(describe(machine()))
    print(
        f"raw encode ({raw['backend']} {raw['precision']}): {raw['per_s']:.1f} courses/s "
        f"(after: {result['raw_after_per_s']:.1f})"
    )
    print(capacity_table(result))
    highest = result["highest_fraction"]
    print(
        "highest steady rate with p99 < 2 s: "
        + (f"{highest:.1f} x raw encode" if highest is not None else "none tried held")
    )


if __name__ == "__main__":
    main()
