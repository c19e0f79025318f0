"""Read paths against their limits: search (API vs raw encode + raw Milvus search) and course
by id (API vs a bare FastAPI endpoint under the same uvicorn command line). Load comes from
wrk, a second process on loopback."""

import random
import time
from typing import Any
from urllib.parse import quote

from bench.environment import BenchStack, Load, bare_endpoints, cpu_seconds, settle, wrk
from bench.limits import run_search


def search_queries(courses: list[dict[str, Any]], seed: int = 7) -> list[str]:
    """Unique queries (no embedding-cache hits): course titles and skills, lower-cased, in a
    random order."""
    found: list[str] = []
    seen: set[str] = set()
    for course in courses:
        for text in [course.get("title") or "", *(course.get("skills") or [])[:2]]:
            query = " ".join(str(text).lower().split())[:200]
            if query and query not in seen:
                seen.add(query)
                found.append(query)
    random.Random(seed).shuffle(found)
    return found


def _load(load: Load) -> dict[str, float]:
    return {
        "requests": load.requests,
        "per_s": load.per_s,
        "errors": load.errors,
        "p50_ms": load.p50_ms,
        "p90_ms": load.p90_ms,
        "p99_ms": load.p99_ms,
    }


def search(
    bench: BenchStack, queries: list[str], *, clients: int, seconds: float, api_workers: int
) -> dict[str, Any]:
    """p50/p99 of `GET /v1/search` at `clients` concurrent clients with unique queries,
    next to raw encode + raw Milvus search of other unique queries from as many processes as
    the API has, measured before and after (the limit is their mean)."""
    stack = bench.stack
    third = len(queries) // 3
    settle(stack)
    before = run_search(bench.env, queries[:third], clients, seconds, api_workers)
    paths = [f"/v1/search?limit=10&q={quote(q)}" for q in queries[third : 2 * third]]
    settle(stack)
    cpu_before = cpu_seconds(stack)
    started = time.perf_counter()
    api = wrk(
        stack.api_url, seconds=seconds, connections=clients, paths=paths, headers=_auth(bench)
    )
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(stack)
    settle(stack)
    after = run_search(bench.env, queries[2 * third :], clients, seconds, api_workers)
    raw_p50 = (before["p50_ms"] + after["p50_ms"]) / 2
    raw_p99 = (before["p99_ms"] + after["p99_ms"]) / 2
    return {
        "api": _load(api),
        "raw_before": before,
        "raw_after": after,
        "raw_p50_ms": raw_p50,
        "raw_p99_ms": raw_p99,
        "p50_ratio": api.p50_ms / raw_p50,
        "p99_ratio": api.p99_ms / raw_p99,
        "unique_queries_needed": api.requests,
        "unique_queries_available": len(paths),
        "cores_busy": {k: (cpu_after[k] - cpu_before[k]) / elapsed for k in cpu_after},
    }


def by_id(
    bench: BenchStack, ids: list[str], *, seconds: float, connections: int, api_workers: int
) -> dict[str, Any]:
    """Requests/s of `GET /v1/courses/{id}` at saturation next to a bare FastAPI endpoint
    served the same way; then p99 of each at half of its own saturation rate."""
    stack = bench.stack
    paths = [f"/v1/courses/{quote(i, safe='')}" for i in ids]
    random.Random(3).shuffle(paths)
    headers = _auth(bench)
    with bare_endpoints(stack, api_workers) as bare_url:
        wrk(bare_url, seconds=2, connections=connections, paths=paths)  # warm up
        wrk(stack.api_url, seconds=2, connections=connections, paths=paths, headers=headers)
        settle(stack)
        bare_max = wrk(bare_url, seconds=seconds, connections=connections, paths=paths)
        settle(stack)
        api_max = wrk(
            stack.api_url, seconds=seconds, connections=connections, paths=paths, headers=headers
        )
        half = api_max.per_s / 2
        settle(stack)
        api_half = wrk(
            stack.api_url, seconds=seconds, connections=64, rate=half, paths=paths,
            headers=headers,
        )  # fmt: skip
        settle(stack)
        bare_half = wrk(
            bare_url, seconds=seconds, connections=64, rate=bare_max.per_s / 2, paths=paths
        )
    return {
        "api_max": _load(api_max),
        "bare_max": _load(bare_max),
        "ratio": api_max.per_s / bare_max.per_s,
        "api_half": _load(api_half),
        "bare_half": _load(bare_half),
        "half_rate": half,
    }


def _auth(bench: BenchStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {bench.stack.api_key}"}
