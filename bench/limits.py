"""The physical limits the service is compared with, each measured in separate processes (as
many as the API has), with none of the service's request handling on the path:

- `run_search`: raw query encode (the service's embedder, same backend) + raw Milvus search;
- `run_publish`: raw confirmed publishes to a quorum queue of the same RabbitMQ
  (also `python -m bench.limits publish --url amqp://...`, printing one JSON line).
"""

import argparse
import asyncio
import json
import multiprocessing
import sys
import threading
import time
import uuid
from typing import Any

from kombu import Connection, Exchange, Queue

from bench.environment import percentile


# --- raw search --------------------------------------------------------------------------------
async def _raw_search(queries: list[str], clients: int, seconds: float) -> list[float]:
    import anyio
    from pymilvus import AsyncMilvusClient

    from shared.embedding import get_embedder
    from shared.milvus import client_kwargs
    from shared.settings import Settings

    settings = Settings()
    embedder = get_embedder(settings)
    embedder.load()
    embedder.encode(["warm up"])
    milvus = AsyncMilvusClient(**client_kwargs(settings))
    await milvus.search(settings.milvus_collection, data=[[0.1] * settings.embedding_dim], limit=1)
    latencies: list[float] = []
    position = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal position
        while time.perf_counter() < deadline:
            query = queries[position % len(queries)]
            position += 1
            started = time.perf_counter()
            vector = await anyio.to_thread.run_sync(embedder.encode, [query])
            await milvus.search(
                settings.milvus_collection,
                data=[vector[0].tolist()],
                limit=10,
                output_fields=["version"],
            )
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    await milvus.close()
    return latencies


def _search_process(queries: list[str], clients: int, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_raw_search(queries, clients, seconds)))


def run_search(
    env: dict[str, str], queries: list[str], clients: int, seconds: float, processes: int
) -> dict[str, float]:
    """`clients` concurrent searches spread over `processes` processes (as the API spreads
    them over its uvicorn processes); each process gets its own share of the queries."""
    import os

    os.environ.update(env)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [
        context.Process(
            target=_search_process,
            args=(queries[i::processes], clients // processes, seconds, out),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    for _ in workers:
        latencies += out.get()
    for worker in workers:
        worker.join()
    return summary(latencies, seconds)


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "per_s": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p90_ms": percentile(latencies, 0.9) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


# --- raw confirmed publishes -------------------------------------------------------------------
def _publish_thread(url: str, queue: str, seconds: float, body: bytes, counts: list[int]) -> None:
    target = Queue(
        queue, Exchange(""), routing_key=queue, durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )  # fmt: skip
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        producer = connection.Producer()
        target(connection.default_channel).declare()
        sent = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            # Returns once the broker confirmed the message (publisher confirms).
            producer.publish(
                body, routing_key=queue, exchange="", delivery_mode=2,
                content_type="application/json", content_encoding="utf-8",
            )  # fmt: skip
            sent += 1
        counts.append(sent)


def _publish_process(url: str, queue: str, seconds: float, threads: int, out: Any) -> None:
    body = json.dumps({"task_id": str(uuid.uuid4()), "args": [str(uuid.uuid4())]} | PADDING)
    counts: list[int] = []
    pool = [
        threading.Thread(target=_publish_thread, args=(url, queue, seconds, body.encode(), counts))
        for _ in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put(sum(counts))


# About the size of the message the API publishes for one task (headers and body).
PADDING = {"headers": "x" * 900}


def run_publish(url: str, seconds: float, processes: int, threads: int) -> dict[str, float]:
    """Confirmed publishes/s to a quorum queue like ours, from `processes` processes with
    `threads` connections each, every publish waiting for its confirm."""
    queue = f"bench.raw.{uuid.uuid4().hex[:6]}"
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [
        context.Process(target=_publish_process, args=(url, queue, seconds, threads, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    total = sum(out.get() for _ in workers)
    for worker in workers:
        worker.join()
    with Connection(url) as connection:
        connection.default_channel.queue_delete(queue)
    return {"published": total, "per_s": total / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["publish"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    result = run_publish(args.url, args.seconds, args.processes, args.threads)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
