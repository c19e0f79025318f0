"""Read-your-writes: what a consistency token costs a read, and how soon a write is readable.

1. The p99 a token adds to a read when it is already satisfied: the same read with and
   without a token, interleaved, one client, on a quiet stack (goal: under 1 ms). Measured for
   a token the API process has seen satisfied before (an in-memory hit) and for tokens it sees
   for the first time (one ledger look-up each), on the course list and on a course by id (a
   read with a token skips the course cache's fast path and reads the row: the notification
   that drops a cached answer may still be on its way).
2. The time from a write's 202 to its token being satisfied, at a steady 20 single-course
   writes/s: each 202 is followed at once by `GET /v1/courses/{id}?consistency=<token>`, timed
   from the 202 to that read's answer (goal: the freshness p99, under 2 s).

    .venv/bin/python -m bench.consistency [--reads 2000] [--seconds 30] [--rate 20]
"""

import argparse
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.environment import own_stack, percentile
from devstack.stack import ROOT

DEMO_CATALOG = ROOT / "devstack" / "demo_catalog.json"


def _wait_task(api: httpx.Client, task_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = api.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return dict(task)
        time.sleep(0.2)
    raise TimeoutError(task_id)


def _timed(api: httpx.Client, path: str, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = api.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return elapsed


def _figures(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5), 3),
        "p99_ms": round(percentile(values, 0.99), 3),
        "max_ms": round(max(values), 3),
    }


def token_overhead(api: httpx.Client, reads: int, course_id: str) -> dict[str, Any]:
    seen = accept(api, "POST", "/v1/courses", course(f"bench-ryw:{uuid.uuid4().hex[:8]}"))
    _wait_task(api, seen["task_id"])
    # Tokens of finished writes, each to be used once: the API process has not seen them.
    fresh = [accept(api, "PATCH", f"/v1/courses/{course_id}", {"rating": 4.0}) for _ in range(200)]
    for accepted in fresh:
        _wait_task(api, accepted["task_id"])
    results: dict[str, Any] = {}
    paths = {"list": ("/v1/courses", {"limit": 20}), "by id": (f"/v1/courses/{course_id}", {})}
    for name, (path, params) in paths.items():
        for _ in range(50):  # warm both paths (caches, connections)
            _timed(api, path, params)
            _timed(api, path, {**params, "consistency": seen["consistency_token"]})
        without, with_seen = [], []
        for _ in range(reads):
            without.append(_timed(api, path, params))
            with_seen.append(
                _timed(api, path, {**params, "consistency": seen["consistency_token"]})
            )
        first = [
            _timed(api, path, {**params, "consistency": accepted["consistency_token"]})
            for accepted in fresh[: len(fresh) // 2]
        ]
        fresh = fresh[len(fresh) // 2 :]
        base = _figures(without)
        results[name] = {
            "without token": base,
            "token seen before": _figures(with_seen),
            "token new to the process": _figures(first),
            "p99 added, seen before (ms)": round(_figures(with_seen)["p99_ms"] - base["p99_ms"], 3),
            "p99 added, new (ms)": round(_figures(first)["p99_ms"] - base["p99_ms"], 3),
        }
    return results


def course(course_id: str) -> dict[str, Any]:
    return {
        "id": course_id,
        "title": "Consistency under load",
        "description": "Reading your own writes across a database and a vector index.",
        "level": "beginner",
        "skills": ["bench"],
    }


def accept(api: httpx.Client, method: str, path: str, body: Any) -> dict[str, Any]:
    response = api.request(method, path, json=body)
    if response.status_code != 202:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
    return dict(response.json())


def freshness(url: str, key: str, seconds: float, rate: float) -> dict[str, Any]:
    """Writes at `rate`/s for `seconds`; each 202 followed by a read carrying its token."""
    delays: list[float] = []
    outcomes: dict[int, int] = {}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {key}"}
    local = threading.local()

    def write_then_read() -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, headers=headers, timeout=30)
        course_id = f"bench-fresh:{uuid.uuid4().hex[:10]}"
        try:
            accepted = accept(local.client, "POST", "/v1/courses", course(course_id))
        except (RuntimeError, httpx.HTTPError):
            with lock:
                outcomes[0] = outcomes.get(0, 0) + 1  # 0: the write itself was not accepted
            return
        token = accepted["consistency_token"]
        accepted_at = time.perf_counter()
        response = local.client.get(
            f"/v1/courses/{course_id}", params={"consistency": token, "consistency_wait": 10}
        )
        with lock:
            outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
            if response.status_code == 200:
                delays.append((time.perf_counter() - accepted_at) * 1000)

    # Open loop: writes leave on the clock, whatever the answers take (as clients would).
    pool = ThreadPoolExecutor(max_workers=64)
    interval = 1.0 / rate
    started = time.perf_counter()
    sent = 0
    while time.perf_counter() - started < seconds:
        due = started + sent * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        pool.submit(write_then_read)
        sent += 1
    pool.shutdown(wait=True)
    elapsed = time.perf_counter() - started
    return {
        "writes": sent,
        "writes_per_s (sent on the clock)": round(sent / elapsed, 1),
        "answers": outcomes,
        "202 to satisfied token": _figures(delays) if delays else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=2000, help="reads per variant (part 1)")
    parser.add_argument("--seconds", type=float, default=30, help="length of part 2")
    parser.add_argument("--rate", type=float, default=20, help="writes per second (part 2)")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    with own_stack("consistency", keep_logs=args.keep_logs) as bench:
        stack = bench.stack
        stack.start_worker()
        stack.start_api(workers=1)
        with stack.client(timeout=120) as api:
            catalog = json.loads(DEMO_CATALOG.read_text())
            _wait_task(api, accept(api, "POST", "/v1/courses/bulk", catalog)["task_id"])
            load_before = os.getloadavg()[0]
            overhead = token_overhead(api, args.reads, catalog[0]["id"])
            assert stack.api_key is not None
            fresh = freshness(stack.api_url, stack.api_key, args.seconds, args.rate)
            load_after = os.getloadavg()[0]
    print(
        json.dumps(
            {
                "load average (1 min) before / after": [load_before, load_after],
                "cores": os.cpu_count(),
                "satisfied token overhead": overhead,
                f"freshness at {args.rate:g} writes/s": fresh,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
