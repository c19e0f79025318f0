"""Bulk ingestion, end to end, against the physical limit measured in the same run.

Starts its own stack (Milvus Lite, a worker, the API) on its own database, vhost, collection and
ports; measures raw `model.encode` on the course texts; then ingests the whole Coursera file
through the HTTP API (one NDJSON bulk request) and waits until every course is searchable.

    .venv/bin/python -m bench.ingest [--limit N] [--keep-logs]
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from infra.local.stack import LocalStack, free_port
from shared.catalog.schemas import CourseIn, embedding_text
from shared.catalog.sources import read_coursera_csv, shared_data_dir
from shared.embedding import Embedder
from shared.milvus import connect
from shared.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432"


def machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}"
    )


async def _pg(sql: str) -> None:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def cpu_seconds(stack: LocalStack) -> dict[str, float]:
    """CPU time (user + system) used so far by each process group the stack started."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups = {process.popen.pid: process.name for process in stack.processes}
    used = dict.fromkeys(groups.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        group = int(fields[2])  # pgrp
        if group in groups:
            used[groups[group]] += (int(fields[11]) + int(fields[12])) / ticks
    return used


def timed(function: Any, *args: Any) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def count(milvus: Any, collection: str) -> int:
    return int(milvus.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="only the first N courses")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    path = shared_data_dir() / "coursera_courses.csv"
    if not path.exists():
        raise SystemExit(f"skipped: {path} is absent")
    courses = read_coursera_csv(path)[: args.limit]
    texts = [embedding_text(CourseIn.model_validate(c).to_record()) for c in courses]

    run = uuid.uuid4().hex[:8]
    database, vhost, collection = (
        f"coursewise_bench_{run}",
        f"coursewise_bench_{run}",
        f"bench_{run}",
    )
    env = {
        "COURSEWISE_DATABASE_URL": f"{PG.replace('postgresql', 'postgresql+asyncpg')}/{database}",
        "COURSEWISE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "COURSEWISE_MILVUS_URI": f"http://127.0.0.1:{free_port()}",
        "COURSEWISE_MILVUS_COLLECTION": collection,
    }
    settings = Settings(**{k.removeprefix("COURSEWISE_").lower(): v for k, v in env.items()})
    var_dir = Path(tempfile.mkdtemp(prefix="coursewise-bench-"))
    asyncio.run(_pg(f'CREATE DATABASE "{database}"'))
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    stack = LocalStack(env=env, var_dir=var_dir, api_port=free_port())
    try:
        with stack.running():
            stack.start_milvus(var_dir / "milvus-data")
            stack.prestart()
            stack.api_key = stack.create_key("bench", ["admin"], rate_limit=1_000_000)
            stack.start_worker()
            stack.start_api()
            time.sleep(3)  # let the worker finish loading its model before the clock starts

            # The limit: the same model, the same texts, one encode call, in this process;
            # measured before and after the end-to-end run (this machine's speed drifts).
            embedder = Embedder(settings)
            embedder.encode(texts[:64])  # warm-up
            raw_before = timed(embedder.encode, texts)

            body = "\n".join(json.dumps(c) for c in courses) + "\n"
            milvus = connect(settings)
            with stack.client(timeout=120) as api:
                cpu_before = cpu_seconds(stack)
                started = time.perf_counter()
                response = api.post(
                    "/v1/courses/bulk",
                    content=body.encode(),
                    headers={"content-type": "application/x-ndjson"},
                )
                response.raise_for_status()
                accepted_at = time.perf_counter()
                task_url = response.json()["status_url"]
                while True:
                    task = api.get(task_url).json()
                    if task["status"] in ("succeeded", "failed"):
                        break
                    time.sleep(0.2)
                # Searchable: every course is in the collection Milvus serves searches from.
                while milvus.query(collection, filter="", output_fields=["count(*)"])[0][
                    "count(*)"
                ] < len(courses):
                    time.sleep(0.2)
                e2e_seconds = time.perf_counter() - started
                cpu_after = cpu_seconds(stack)
                probe = api.get("/v1/search", params={"q": courses[-1]["title"], "limit": 5}).json()
            milvus.close()
            raw_after = timed(embedder.encode, texts)
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        if not args.keep_logs:
            shutil.rmtree(var_dir, ignore_errors=True)

    n = len(courses)
    raw_seconds = (raw_before + raw_after) / 2
    raw_rate, e2e_rate = n / raw_seconds, n / e2e_seconds
    print(f"machine: {machine()}")
    print(f"data: {n} courses from {path.name} (unique ids), one NDJSON bulk request")
    counts = task["counts"]
    print(f"task: {task['status']}, applied {counts['applied']}, failed {counts['failed']}")
    print(f"accept (POST until 202): {accepted_at - started:.2f} s")
    print(
        f"raw model.encode: {raw_seconds:.1f} s = {raw_rate:.1f} courses/s "
        f"(before {n / raw_before:.1f}, after {n / raw_after:.1f})"
    )
    print(f"end to end (POST until all searchable): {e2e_seconds:.1f} s = {e2e_rate:.1f} courses/s")
    print(f"ratio end-to-end / raw encode: {e2e_rate / raw_rate:.2f}")
    spent = ", ".join(f"{name} {cpu_after[name] - cpu_before[name]:.1f}" for name in cpu_after)
    print(f"CPU seconds during end to end (2 cores = {2 * e2e_seconds:.0f} available): {spent}")
    found = courses[-1]["id"] in [hit["id"] for hit in probe["items"]]
    print(f"the last course is found by its title in the top 5: {found}")


if __name__ == "__main__":
    main()
