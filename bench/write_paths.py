"""Write paths against their limits: accepting `POST /v1/courses` (202) next to raw confirmed
publishes to the same RabbitMQ, and freshness (202 until searchable) at a steady write rate."""

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
from shared.milvus import client_kwargs, literal


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
