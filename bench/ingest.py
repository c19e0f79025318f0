"""Bulk ingestion, end to end, against the physical limit measured in the same run.

Starts its own stack (Milvus Lite, a worker, the API) on its own database, vhost, collection and
ports; measures raw `model.encode` on the course texts; then ingests the whole Coursera file
through the HTTP API (one NDJSON bulk request) and waits until every course is searchable.

    .venv/bin/python -m bench.ingest [--limit N] [--keep-logs]
"""

import argparse
import json
import time
from typing import Any

from bench.environment import BenchStack, cpu_seconds, describe, machine, own_stack, settle
from shared.catalog.schemas import CourseIn, embedding_text
from shared.catalog.sources import read_coursera_csv, shared_data_dir
from shared.embedding import Embedder
from shared.milvus import connect


def timed(function: Any, *args: Any) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def count(milvus: Any, collection: str) -> int:
    return int(milvus.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])


def coursera(limit: int | None = None) -> list[dict[str, Any]]:
    path = shared_data_dir() / "coursera_courses.csv"
    if not path.exists():
        raise SystemExit(f"skipped: {path} is absent")
    return read_coursera_csv(path)[:limit]


def run(bench: BenchStack, courses: list[dict[str, Any]]) -> dict[str, Any]:
    """Bulk-ingest `courses` through the API of a running stack (worker started here) and
    measure it against raw encode of the same texts in this process, before and after."""
    stack, settings = bench.stack, bench.settings
    texts = [embedding_text(CourseIn.model_validate(c).to_record()) for c in courses]
    unique = len({CourseIn.model_validate(c).id for c in courses})
    stack.start_worker()
    if not any(p.name == "api" for p in stack.processes):
        stack.start_api()
    time.sleep(5)  # let the worker finish loading its model before the clock starts
    settle(stack)

    # The limit: the same model and backend, the same texts, one encode call, in this
    # process; measured before and after the end-to-end run (this machine's speed drifts).
    embedder = Embedder(settings)
    embedder.encode(texts[:64])  # warm-up
    raw_before = timed(embedder.encode, texts)

    body = "\n".join(json.dumps(c) for c in courses) + "\n"
    milvus = connect(settings)
    collection = settings.milvus_collection
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
        while count(milvus, collection) < unique:
            time.sleep(0.2)
        e2e_seconds = time.perf_counter() - started
        cpu_after = cpu_seconds(stack)
        probe = api.get("/v1/search", params={"q": courses[-1]["title"], "limit": 5}).json()
    milvus.close()
    raw_after = timed(embedder.encode, texts)
    n = len(courses)
    raw_seconds = (raw_before + raw_after) / 2
    return {
        "courses": n,
        "unique_ids": unique,
        "backend": embedder.backend,
        "task_status": task["status"],
        "applied": task["counts"]["applied"],
        "failed": task["counts"]["failed"],
        "accept_s": accepted_at - started,
        "raw_per_s": n / raw_seconds,
        "raw_before_per_s": n / raw_before,
        "raw_after_per_s": n / raw_after,
        "e2e_s": e2e_seconds,
        "e2e_per_s": n / e2e_seconds,
        "ratio": raw_seconds / e2e_seconds,
        "cpu_s": {name: cpu_after[name] - cpu_before[name] for name in cpu_after},
        "last_found": courses[-1]["id"] in [hit["id"] for hit in probe["items"]],
    }


def report(result: dict[str, Any]) -> str:
    spent = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result["cpu_s"].items())
    return "\n".join(
        [
            f"data: {result['courses']} rows ({result['unique_ids']} unique ids), one NDJSON "
            f"bulk request; backend {result['backend']}",
            f"task: {result['task_status']}, applied {result['applied']}, "
            f"failed {result['failed']}",
            f"accept (POST until 202): {result['accept_s']:.2f} s",
            f"raw encode: {result['raw_per_s']:.1f} courses/s (before "
            f"{result['raw_before_per_s']:.1f}, after {result['raw_after_per_s']:.1f})",
            f"end to end (POST until all searchable): {result['e2e_s']:.1f} s = "
            f"{result['e2e_per_s']:.1f} courses/s",
            f"ratio end-to-end / raw encode: {result['ratio']:.2f}",
            f"CPU seconds during end to end: {spent}",
            f"the last course is found by its title in the top 5: {result['last_found']}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="only the first N courses")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    courses = coursera(args.limit)
    with own_stack("ingest", keep_logs=args.keep_logs) as bench:
        result = run(bench, courses)
    print(describe(machine()))
    print(report(result))


if __name__ == "__main__":
    main()
