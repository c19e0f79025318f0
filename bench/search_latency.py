"""Search and suggest latency through the public HTTP API, against today's semantic-only path,
on the Coursera catalogue (3.4k courses) and the same grown to 50,000, in one run.

"Today's semantic-only path" is what `GET /v1/search` did before hybrid search: one query
encode and one Milvus search per request. It is measured raw (no HTTP, no request handling), in
as many processes as the API has, with as many clients, before and after the API runs; its p50
and throughput are the means of the two. The API is driven by wrk (a second process, in C) with
every query new to it (lower-cased titles and skills, a slice per run, and the API restarted
between catalogues), so its query-embedding cache never hits: the worst case for the service.

    .venv/bin/python -m bench.search_latency [--grow 50000] [--seconds 10] [--limit-courses N]

Prints one table per catalogue: p50 / p99 / req/s of each path at 1 and 20 clients, and ratios
against the raw path at the same number of clients. Goals (issue "hybrid search"): fused p50
<= 1.2x, fused req/s at 20 clients >= 2x, suggest p50 <= 10 ms at 20 clients.
"""

import argparse
import random
import sys
import time
from dataclasses import dataclass
from urllib.parse import quote

from bench.environment import (
    BenchStack,
    Load,
    describe,
    machine,
    own_stack,
    settle,
    wrk,
    wrk_available,
)
from bench.limits import run_search
from bench.read_paths import search_queries
from bench.search_relevance import load_catalogue
from shared.catalog.schemas import CourseIn
from shared.catalog.sources import read_coursera_csv, shared_data_dir

CLIENTS = (1, 20)
MODES: dict[str, str] = {
    "semantic only (semantic_ratio=1)": "&semantic_ratio=1",
    "keyword only (semantic_ratio=0)": "&semantic_ratio=0",
    "fused (the default)": "",
}
SUGGEST = "suggest"
TYPISTS = "suggest, 20 typists (4 requests/s each)"


@dataclass
class Row:
    path: str
    clients: int
    p50_ms: float
    p99_ms: float
    per_s: float
    errors: int = 0
    note: str = ""


class Queries:
    """Hands out slices of unique queries; none is handed out twice."""

    def __init__(self, queries: list[str]) -> None:
        self.queries = queries
        self.used = 0

    def take(self, n: int) -> list[str]:
        chunk = self.queries[self.used : self.used + n]
        self.used += len(chunk)
        if not chunk:
            raise SystemExit(f"out of unique queries ({len(self.queries)}); use fewer --seconds")
        return chunk  # fewer than asked: wrk repeats them, and the table says so


def raw(bench: BenchStack, queries: list[str], clients: int, seconds: float, workers: int) -> Row:
    r = run_search(bench.env, queries, clients, seconds, min(workers, clients))
    return Row("today's semantic path, raw (encode + Milvus)", clients, r["p50_ms"],
               r["p99_ms"], r["per_s"])  # fmt: skip


def api(
    bench: BenchStack,
    name: str,
    paths: list[str],
    clients: int,
    seconds: float,
    rate: float | None = None,
) -> Row:
    settle(bench.stack, timeout=30)
    headers = {"Authorization": f"Bearer {bench.stack.api_key}"}
    load: Load = wrk(
        bench.stack.api_url,
        seconds=seconds,
        connections=clients,
        paths=paths,
        headers=headers,
        rate=rate,
    )
    repeated = load.requests > len(paths)
    note = f"queries repeated ({len(paths)} for {load.requests})" if repeated else ""
    row = Row(name, clients, load.p50_ms, load.p99_ms, load.per_s, load.errors, note)
    print(row, file=sys.stderr)
    return row


def measure(
    bench: BenchStack, pool: Queries, titles: Queries, seconds: float, workers: int
) -> list[Row]:
    rows: list[Row] = []
    for clients in CLIENTS:
        # A run's share of unique queries: enough for 40 req/s a client, 120 req/s in all.
        budget = int(min(40 * clients, 120) * seconds)
        settle(bench.stack, timeout=30)
        before = raw(bench, pool.queries[:budget], clients, seconds, workers)
        for name, extra in MODES.items():
            paths = [f"/v1/search?limit=10&q={quote(q)}{extra}" for q in pool.take(budget)]
            rows.append(api(bench, name, paths, clients, seconds))
        settle(bench.stack, timeout=30)
        after = raw(bench, pool.queries[budget : 2 * budget], clients, seconds, workers)
        rows.append(
            Row(before.path, clients, (before.p50_ms + after.p50_ms) / 2,
                (before.p99_ms + after.p99_ms) / 2, (before.per_s + after.per_s) / 2,
                note=f"before {before.p50_ms:.0f} ms, {before.per_s:.0f}/s; "
                f"after {after.p50_ms:.0f} ms, {after.per_s:.0f}/s")
        )  # fmt: skip
    for clients in CLIENTS:
        budget = int(min(100 * clients, 200) * seconds)  # suggest has no cache: repeats are fair
        # What a search box sends while typing: the first characters of a title.
        paths = [f"/v1/search/suggest?limit=10&q={quote(t[:12])}" for t in titles.take(budget)]
        rows.append(api(bench, SUGGEST, paths, clients, seconds))
    # People typing: 20 search boxes, each sending its text 4 times a second.
    paths = [f"/v1/search/suggest?limit=10&q={quote(t[:9])}" for t in titles.take(800)]
    rows.append(api(bench, TYPISTS, paths, 20, seconds, rate=80))
    return rows


def table(rows: list[Row]) -> str:
    base = {r.clients: r for r in rows if r.path.startswith("today")}
    lines = [
        "| path | clients | p50 ms | p99 ms | req/s | errors | p50 / today | req/s / today "
        "| note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: (r.path.startswith(SUGGEST), r.clients)):
        ref = base[r.clients]
        lines.append(
            f"| {r.path} | {r.clients} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.per_s:.1f} | "
            f"{r.errors} | {r.p50_ms / ref.p50_ms:.2f} | {r.per_s / ref.per_s:.2f} | {r.note} |"
        )
    return "\n".join(lines)


def verdict(rows: list[Row]) -> str:
    def one(path: str, clients: int) -> Row:
        return next(r for r in rows if r.path.startswith(path) and r.clients == clients)

    parts = []
    for clients in CLIENTS:
        ratio = one("fused", clients).p50_ms / one("today", clients).p50_ms
        parts.append(f"fused p50 {ratio:.2f}x today's at {clients} client(s) (goal <= 1.2)")
    throughput = one("fused", 20).per_s / one("today", 20).per_s
    parts.append(f"fused req/s {throughput:.2f}x today's at 20 clients (goal >= 2)")
    parts.append(
        f"suggest p50 {one(SUGGEST, 20).p50_ms:.1f} ms at 20 clients back to back, "
        f"{one(TYPISTS, 20).p50_ms:.1f} ms for 20 typists (goal <= 10)"
    )
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--limit-courses", type=int, default=None)
    parser.add_argument("--grow", type=int, default=50_000, help="0: the real catalogue only")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    path = shared_data_dir() / "coursera_courses.csv"
    if not path.exists() or not wrk_available():
        print(f"skipped: needs {path} and wrk (bench/run.sh installs it)")
        return
    courses = read_coursera_csv(path)[: args.limit_courses]
    unique = list({CourseIn.model_validate(c).id: c for c in courses}.values())
    queries = search_queries(unique)
    titles = list(dict.fromkeys(c["title"].lower() for c in unique))
    started = time.perf_counter()
    report: list[str] = [describe(machine())]
    with own_stack("latency", keep_logs=args.keep_logs) as bench:
        bench.stack.start_worker()
        bench.stack.start_api(workers=args.api_workers)
        report.append(load_catalogue(bench, unique, chunk=500))
        print(report[-1], file=sys.stderr)
        sizes: list[tuple[int, list[Row]]] = []
        workers = args.api_workers
        rows = measure(bench, Queries(queries), Queries(titles), args.seconds, workers)
        sizes.append((len(unique), rows))
        if args.grow > len(unique):
            from bench.scale import grow

            added = grow(bench.settings, unique, args.grow)
            report.append(f"grown by {added} copies to {len(unique) + added} courses")
            print(report[-1], file=sys.stderr)
            _restart_api(bench, args.api_workers)  # a cold query cache, as on the first size
            # New queries for a cold cache: the copies' titles ("... (edition k)").
            editions = [f"{t} (edition {k})" for k in range(1, 15) for t in titles]
            random.Random(5).shuffle(editions)
            rows = measure(bench, Queries(editions), Queries(titles), args.seconds, workers)
            sizes.append((len(unique) + added, rows))
    print("\n".join(report))
    print(f"({time.perf_counter() - started:.0f} s)")
    for size, rows in sizes:
        print(f"\n### {size} courses, {args.api_workers} API processes\n")
        print(table(rows))
        print("\n" + verdict(rows))


def _restart_api(bench: BenchStack, workers: int) -> None:
    for process in [p for p in bench.stack.processes if p.name == "api"]:
        process.stop()
        bench.stack.processes.remove(process)
    bench.stack.start_api(workers=workers)


if __name__ == "__main__":
    main()
