"""Recommendation latency under 20 concurrent clients, next to raw Milvus search time for the
same vectors, measured in the same run.

Starts its own stack (Milvus Lite, a worker, the training worker, beat, the API) on its own
database, vhost, collection and ports; loads MOOCCube through the HTTP API (courses in bulk,
enrolments in batches of 1,000, then `POST /v1/admin/retrain`); then, from this second
process, N clients request `GET /v1/users/{id}/recommendations` for learners with history.
Afterwards it records the Milvus searches those requests make (same learner vectors, same
filters, via the same `Recommender` code) and replays only the searches, N at a time.

    .venv/bin/python -m bench.recommendations [--requests 2000] [--clients 20]
"""

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
from typing import Any

import httpx
import numpy as np
from pymilvus import AsyncMilvusClient

from bench import mooccube
from bench.environment import own_stack
from shared.catalog.filters import CourseFilters
from shared.catalog.search import CourseSearch
from shared.db import create_engine, create_sessionmaker
from shared.embedding import get_embedder
from shared.milvus import client_kwargs
from shared.recommendations.service import Recommender
from shared.settings import Settings


def headers() -> dict[str, str]:
    key = os.environ.get("COURSEWISE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def wait(api: httpx.Client, accepted: httpx.Response, timeout: float = 900) -> dict[str, Any]:
    accepted.raise_for_status()
    url = accepted.json()["status_url"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = api.get(url).json()
        if task["status"] in ("succeeded", "failed"):
            return task
        time.sleep(0.5)
    raise TimeoutError(url)


def load(api: httpx.Client) -> dict[str, list[str]]:
    courses = mooccube.courses()
    task = wait(api, api.post("/v1/courses/bulk", json=courses))
    assert task["status"] == "succeeded", task
    enrolments = mooccube.enrolments()
    items = [
        {"user_id": learner, "course_id": course, "type": "enroll"}
        for learner, taken in enrolments.items()
        for course in taken
    ]
    for start in range(0, len(items), 1000):
        task = wait(api, api.post("/v1/interactions", json=items[start : start + 1000]))
        assert task["status"] == "succeeded" and not task["counts"]["failed"], task
    task = wait(api, api.post("/v1/admin/retrain"))
    assert task["status"] == "succeeded", task
    return enrolments


async def clients(
    base_url: str, learners: list[str], n_clients: int, params: dict[str, Any]
) -> tuple[list[float], float]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for learner in learners:
        queue.put_nowait(learner)
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, headers=headers(), timeout=60) as http:
            while not queue.empty():
                learner = queue.get_nowait()
                started = time.perf_counter()
                response = await http.get(f"/v1/users/{learner}/recommendations", params=params)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(n_clients)))
    return latencies, time.perf_counter() - started


# (collection, vector, filter expression, limit, output fields): one vector search as made.
Search = tuple[str, np.ndarray, str, int, list[str]]


class RecordingRecommender(Recommender):
    """The service's own code, noting every vector search it makes."""

    searches: list[Search]

    async def _nearest(
        self,
        collection: str,
        vector: np.ndarray,
        expression: str,
        limit: int,
        vectors: dict[str, np.ndarray] | None = None,
    ) -> dict[str, float]:
        fields = ["vector"] if vectors is not None else ["version"]
        self.searches.append((collection, vector, expression, limit, fields))
        return await super()._nearest(collection, vector, expression, limit, vectors)


async def record_searches(settings: Settings, learners: list[str]) -> list[list[Search]]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    milvus = AsyncMilvusClient(**client_kwargs(settings))
    recommender = RecordingRecommender(
        milvus, settings, CourseSearch(milvus, settings.milvus_collection, get_embedder(settings))
    )
    per_request = []
    try:
        # One at a time: the recorder notes the searches of the request in progress.
        for learner in learners:
            recommender.searches = []
            async with sessionmaker() as session:
                await recommender.recommend(session, learner, CourseFilters(), limit=10)
            per_request.append(recommender.searches)
    finally:
        await milvus.close()
        await engine.dispose()
    return per_request


async def raw_searches(
    settings: Settings, requests: list[list[Search]], n_clients: int
) -> tuple[list[float], float]:
    """Each request's searches, one after the other as the service makes them, N at a time."""
    milvus = AsyncMilvusClient(**client_kwargs(settings))
    queue: asyncio.Queue[list[Search]] = asyncio.Queue()
    for searches in requests:
        queue.put_nowait(searches)
    latencies: list[float] = []

    async def client() -> None:
        while not queue.empty():
            searches = queue.get_nowait()
            started = time.perf_counter()
            for collection, vector, expression, limit, fields in searches:
                kwargs: dict[str, Any] = {"limit": limit, "output_fields": fields}
                if expression:
                    kwargs["filter"] = expression
                await milvus.search(collection, data=[vector.tolist()], **kwargs)
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(n_clients)))
        return latencies, time.perf_counter() - started
    finally:
        await milvus.close()


def summary(name: str, latencies: list[float], seconds: float) -> str:
    return (
        f"| {name} | {len(latencies)} | {percentile(latencies, 50) * 1000:.1f} | "
        f"{percentile(latencies, 99) * 1000:.1f} | {statistics.mean(latencies) * 1000:.1f} | "
        f"{len(latencies) / seconds:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if not mooccube.available():
        raise SystemExit(f"skipped: {mooccube.data_dir()} is absent")

    with own_stack("recs", keep_logs=args.keep_logs) as bench:
        stack = bench.stack
        os.environ.update(bench.env)
        settings = bench.settings
        assert stack.api_key is not None  # own_stack's admin key: writes, retrain, reads
        os.environ["COURSEWISE_API_KEY"] = stack.api_key
        stack.start_worker()
        stack.start_training_worker()
        stack.start_beat()  # the sweeper: a publish lost to a broker hiccup is redone
        stack.start_api(workers=args.api_workers)
        with httpx.Client(base_url=stack.api_url, headers=headers(), timeout=120) as api:
            started = time.perf_counter()
            enrolments = load(api)
            load_s = time.perf_counter() - started
            model = api.get(f"/v1/users/{next(iter(enrolments))}/recommendations").json()
        rng = random.Random(7)
        with_history = sorted(enrolments)
        learners = [rng.choice(with_history) for _ in range(args.requests)]
        warm = learners[: min(200, len(learners))]
        asyncio.run(clients(stack.api_url, warm, args.clients, {"limit": 10}))
        loads = {"before the API requests": os.getloadavg()[0]}
        api_latencies, api_s = asyncio.run(
            clients(stack.api_url, learners, args.clients, {"limit": 10})
        )
        loads["after the API requests"] = os.getloadavg()[0]
        filtered, filtered_s = asyncio.run(
            clients(stack.api_url, learners[:500], args.clients, {"limit": 10, "free": True})
        )
        recorded = asyncio.run(record_searches(settings, learners))
        asyncio.run(raw_searches(settings, recorded[:200], args.clients))  # warm-up
        loads["before the raw searches"] = os.getloadavg()[0]
        raw, raw_s = asyncio.run(raw_searches(settings, recorded, args.clients))
        loads["after the raw searches"] = os.getloadavg()[0]
        raw_one, raw_one_s = asyncio.run(raw_searches(settings, recorded[:500], 1))

    import pymilvus

    searches = sum(len(r) for r in recorded) / len(recorded)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, pymilvus {pymilvus.__version__}, "
        f"API workers {args.api_workers}"
    )
    print(
        f"data: MOOCCube, {len(mooccube.courses())} courses, "
        f"{sum(map(len, enrolments.values()))} enrolments of {len(enrolments)} learners "
        f"(loaded through the API and trained in {load_s:.0f} s); model version "
        f"{model['model_version']}, {settings.als_factors} factors"
    )
    print(f"{args.clients} concurrent clients; {searches:.1f} vector searches per request")
    print("1-minute load average: " + ", ".join(f"{k} {v:.1f}" for k, v in loads.items()) + "\n")
    print("| what | requests | p50 ms | p99 ms | mean ms | per s |\n|---|---|---|---|---|---|")
    print(summary("GET recommendations (limit 10)", api_latencies, api_s))
    print(summary("GET recommendations (limit 10, free=true)", filtered, filtered_s))
    print(summary("raw Milvus searches of the same requests", raw, raw_s))
    print(summary("raw Milvus searches, 1 client", raw_one, raw_one_s))
    ratio = percentile(api_latencies, 50) / percentile(raw, 50)
    print(f"\np50 ratio recommendation / raw searches: {ratio:.1f}")
    print(json.dumps({"p50_ms": percentile(api_latencies, 50) * 1000}))


if __name__ == "__main__":
    main()
