"""Read-path and accept-path load: which component saturates first, with figures for
docs/scaling.md.

Starts its own stack (Milvus Lite, one worker, the API with N uvicorn processes) on its own
database, vhost, collection and ports; loads the demo catalogue plus the first Coursera courses;
then drives each endpoint from this process (a second process, asyncio + httpx) at a fixed
concurrency for a fixed time, and reports requests/s, latency percentiles and the CPU seconds
each process group used meanwhile (the busiest one is what saturates).

    .venv/bin/python -m bench.reads [--courses 300] [--seconds 15] [--concurrency 16]
"""

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.embedding import QUERIES as TYPICAL_QUERIES
from bench.environment import cpu_seconds, describe, machine, own_stack, percentile
from devstack.run import DEMO_CATALOG
from shared.catalog.sources import read_coursera_csv, shared_data_dir

QUERIES = TYPICAL_QUERIES[:8]  # repeated: they hit the query-embedding cache


async def drive(
    call: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    api_url: str,
    api_key: str | None,
    concurrency: int,
    seconds: float,
) -> tuple[int, int, list[float]]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(
        base_url=api_url, timeout=60, limits=limits, headers=headers
    ) as client:

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await call(client)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 400:
                    errors += 1

        await asyncio.gather(*(user() for _ in range(concurrency)))
    return len(latencies), errors, latencies


def wait_task(api: httpx.Client, task_url: str, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = api.get(task_url).json()
        if task["status"] in ("succeeded", "failed"):
            return dict(task)
        time.sleep(0.5)
    raise TimeoutError(task_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--courses", type=int, default=300, help="Coursera courses besides the demo"
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    courses = json.loads(DEMO_CATALOG.read_text())
    coursera = shared_data_dir() / "coursera_courses.csv"
    if coursera.exists():
        courses += read_coursera_csv(coursera)[: args.courses]
    results: list[tuple[str, int, int, list[float], dict[str, float]]] = []
    with own_stack("reads", keep_logs=args.keep_logs) as bench:
        stack = bench.stack
        stack.start_worker()
        stack.start_api(workers=args.api_workers)
        with stack.client(timeout=120) as api:
            body = "\n".join(json.dumps(c) for c in courses).encode()
            accepted = api.post(
                "/v1/courses/bulk",
                content=body,
                headers={"content-type": "application/x-ndjson"},
            )
            accepted.raise_for_status()
            loaded = time.perf_counter()
            task = wait_task(api, accepted.json()["status_url"])
            print(
                f"catalogue: {task['counts']['applied']} courses indexed in "
                f"{time.perf_counter() - loaded:.0f} s"
            )
        ids = [c["id"] for c in courses]
        one = dict(courses[0])

        scenarios: dict[str, Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]] = {
            "GET /v1/courses/{id}": lambda c: c.get(f"/v1/courses/{random.choice(ids)}"),
            "GET /v1/courses?level=beginner": lambda c: c.get(
                "/v1/courses", params={"level": "beginner", "limit": 20}
            ),
            # Repeated queries hit the API's query-embedding cache ...
            "GET /v1/search (8 repeated queries)": lambda c: c.get(
                "/v1/search", params={"q": random.choice(QUERIES), "limit": 10}
            ),
            # ... unique ones embed every query: the realistic worst case.
            "GET /v1/search (unique queries)": lambda c: c.get(
                "/v1/search",
                params={"q": f"{random.choice(QUERIES)} {uuid.uuid4().hex[:6]}", "limit": 10},
            ),
            "GET /v1/courses/{id}/similar": lambda c: c.get(
                f"/v1/courses/{random.choice(ids)}/similar", params={"limit": 10}
            ),
            # Accept path only: the same content each time, so the worker re-embeds nothing.
            "POST /v1/courses (202)": lambda c: c.post("/v1/courses", json=one),
        }
        for name, call in scenarios.items():
            before = cpu_seconds(stack)
            load_before = time.process_time()
            started = time.perf_counter()
            count, errors, latencies = asyncio.run(
                drive(call, stack.api_url, stack.api_key, args.concurrency, args.seconds)
            )
            elapsed = time.perf_counter() - started
            after = cpu_seconds(stack)
            spent = {k: (after[k] - before[k]) / elapsed for k in after}
            spent["load"] = (time.process_time() - load_before) / elapsed
            results.append((name, count, errors, latencies, spent))
            time.sleep(2)

    print(
        f"machine: {describe(machine())}; load from one asyncio process, "
        f"{args.concurrency} concurrent"
    )
    print(
        f"API: {args.api_workers} uvicorn processes; {len(courses)} courses; "
        f"{args.seconds:.0f} s each"
    )
    print(
        "| endpoint | req/s | p50 ms | p95 ms | errors "
        "| cores busy: API / Milvus / worker / load generator |"
    )
    print("|---|---|---|---|---|---|")
    for name, count, errors, latencies, spent in results:
        rate = count / args.seconds
        print(
            f"| {name} | {rate:.0f} | {percentile(latencies, 0.5) * 1000:.0f} | "
            f"{percentile(latencies, 0.95) * 1000:.0f} | {errors} | "
            f"{spent.get('api', 0):.2f} / {spent.get('milvus', 0):.2f} / "
            f"{spent.get('worker', 0):.2f} / {spent['load']:.2f} |"
        )
    print(f"(cores busy: CPU seconds per second of wall time; this machine has {os.cpu_count()})")


if __name__ == "__main__":
    main()
