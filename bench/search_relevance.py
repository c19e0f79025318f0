"""Search relevance on the real Coursera catalogue, through the public HTTP API only.

Starts its own stack (Milvus Lite, a worker, the API) on its own database, vhost, collection and
ports; loads every course of ../shared/data/coursera_courses.csv through the bulk write endpoint
(NDJSON, as `coursewise ingest --preset coursera` sends it), waits for the tasks; then asks
`GET /v1/search` (keyword only `semantic_ratio=0`, semantic only `semantic_ratio=1`, and the
fused default) and `GET /v1/search/suggest` over HTTP, and scores the top 10.

Query classes (titles shared by two courses once normalised are left out of the title classes):
- exact title: the title as it is; the target is its course;
- title with a typo: two adjacent letters swapped in one word of 4+ letters (seeded);
- two-word prefix: the first two words of the title, as typed in a search box (also with a typo);
- skill: a skill phrase of the catalogue; a result is a hit when it lists that skill;
- paraphrase: a hand-written description of one course using none of its title's words
  (bench/paraphrases.json; checked here).
A fixed seed splits each class in two halves: tune on one, report the other.

    .venv/bin/python -m bench.search_relevance [--limit-courses N] [--per-class N] [--latency]
"""

import argparse
import asyncio
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.environment import BenchStack, describe, machine, own_stack, percentile, settle
from shared.catalog.sources import read_coursera_csv, shared_data_dir
from shared.catalog.suggest import normalise

K = 10
SEED = 20261202
DRAWS = 2000
PARAPHRASES = Path(__file__).with_name("paraphrases.json")
# Search modes, as query parameters. A server that does not know `semantic_ratio` ignores it,
# and the three columns come out equal.
MODES: dict[str, dict[str, str]] = {
    "keyword": {"semantic_ratio": "0"},
    "semantic": {"semantic_ratio": "1"},
    "fused": {},
}
SUGGEST = "suggest"
# Answers that said they were degraded (PostgreSQL alone), per endpoint: a relevance figure
# from such answers is not the fused one.
DEGRADED: Counter[str] = Counter()
CLASSES = (
    "exact title",
    "title with a typo",
    "two-word prefix",
    "two-word prefix with a typo",
    "skill",
    "paraphrase",
)
# Classes a title completion can answer (a skill or a description is not a title).
SUGGEST_CLASSES = (
    "exact title",
    "title with a typo",
    "two-word prefix",
    "two-word prefix with a typo",
)
_WORD = re.compile(r"[^\W_]+")


# --- the queries -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    kind: str
    text: str
    target: str | None = None  # the course it should find, or
    skill: str | None = None  # the skill a hit must list
    half: str = "report"


def transpose_one(text: str, rng: random.Random) -> str | None:
    """`text` with two adjacent, different letters swapped in one word of at least 4 letters."""
    words = [m for m in re.finditer(r"[A-Za-z]+", text) if len(m.group()) >= 4]
    rng.shuffle(words)
    for word in words:
        spots = [i for i in range(len(word.group()) - 1) if word.group()[i] != word.group()[i + 1]]
        if spots:
            i = word.start() + rng.choice(spots)
            return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return None


def two_word_prefix(title: str) -> str | None:
    words = _WORD.findall(title)
    return " ".join(words[:2]) if len(words) >= 2 else None


def title_words(title: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(title) if len(w) >= 3}


def check_paraphrase(query: str, title: str) -> None:
    shared = title_words(title) & {w.lower() for w in _WORD.findall(query)}
    if shared:
        raise ValueError(f"paraphrase {query!r} uses words of the title {title!r}: {shared}")


def load_paraphrases(path: Path, titles: dict[str, str]) -> list[Query]:
    """Hand-written queries whose course is in `titles`; each is checked for title words."""
    entries = json.loads(path.read_text())
    queries = []
    for entry in entries:
        course_id, text = entry["id"], entry["query"]
        if course_id not in titles:
            continue  # not loaded (--limit-courses)
        check_paraphrase(text, titles[course_id])
        queries.append(Query("paraphrase", text, target=course_id))
    return queries


def skill_phrases(courses: Sequence[dict[str, Any]]) -> list[str]:
    """Skills worth typing: held by 3 to 100 courses, 1 to 4 plain words (the scrape's column
    also holds category slugs and run-together lists, which nobody searches for)."""
    counts = Counter(skill for course in courses for skill in course.get("skills", []))
    return sorted(
        skill
        for skill, n in counts.items()
        if 3 <= n <= 100
        and 1 <= len(skill.split()) <= 4
        and re.fullmatch(r"[a-z][a-z0-9 +#.]+", skill)
    )


def build_queries(
    courses: Sequence[dict[str, Any]], per_class: int | None, seed: int = SEED
) -> list[Query]:
    rng = random.Random(seed)
    counts = Counter(normalise(c["title"]) for c in courses)
    unique = [c for c in courses if counts[normalise(c["title"])] == 1]
    by_class: dict[str, list[Query]] = {kind: [] for kind in CLASSES}
    for course in unique:
        title, cid = course["title"], course["id"]
        by_class["exact title"].append(Query("exact title", title, target=cid))
        if (typo := transpose_one(title, rng)) is not None:
            by_class["title with a typo"].append(Query("title with a typo", typo, target=cid))
        if (prefix := two_word_prefix(title)) is not None:
            by_class["two-word prefix"].append(Query("two-word prefix", prefix, target=cid))
            if (typo := transpose_one(prefix, rng)) is not None:
                kind = "two-word prefix with a typo"
                by_class[kind].append(Query(kind, typo, target=cid))
    by_class["skill"] = [Query("skill", s, skill=s) for s in skill_phrases(courses)]
    titles = {c["id"]: c["title"] for c in courses}
    by_class["paraphrase"] = load_paraphrases(PARAPHRASES, titles)
    queries = []
    for kind, members in by_class.items():
        rng.shuffle(members)
        if per_class is not None and kind != "paraphrase":
            members = members[:per_class]
        for i, query in enumerate(members):
            half = "tuning" if i % 2 == 0 else "report"
            queries.append(Query(query.kind, query.text, query.target, query.skill, half))
    return queries


# --- scoring -----------------------------------------------------------------------------------
def rank_of(query: Query, items: Sequence[dict[str, Any]]) -> int | None:
    """1-based position of the first hit in the top K, or None."""
    for position, item in enumerate(items[:K], start=1):
        if query.target is not None and item["id"] == query.target:
            return position
        if query.skill is not None and query.skill in item.get("skills", []):
            return position
    return None


@dataclass
class Scores:
    ranks: list[int | None] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        rr = np.array([1.0 / r if r else 0.0 for r in self.ranks])
        return {
            "hit@1": np.array([1.0 if r == 1 else 0.0 for r in self.ranks]),
            "hit@10": np.array([1.0 if r else 0.0 for r in self.ranks]),
            "MRR": rr,
        }


def with_interval(values: np.ndarray, seed: int = 0) -> str:
    """Mean and its 95% bootstrap interval (resampling the queries)."""
    if len(values) == 0:
        return "-"
    picks = np.random.default_rng(seed).integers(0, len(values), size=(DRAWS, len(values)))
    low, high = np.percentile(values[picks].mean(axis=1), [2.5, 97.5])
    return f"{values.mean():.3f} [{low:.2f}, {high:.2f}]"


# --- asking the API ----------------------------------------------------------------------------
async def ask_all(
    api_url: str, api_key: str | None, queries: Sequence[Query], endpoint: str, concurrency: int
) -> list[int | None]:
    """The rank of each query's hit when asked on `endpoint` (a search mode or suggest)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ranks: list[int | None] = [None] * len(queries)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def one(index: int, query: Query) -> None:
            if endpoint == SUGGEST:
                path, params = "/v1/search/suggest", {"q": query.text, "limit": str(K)}
            else:
                path, params = "/v1/search", {"q": query.text, "limit": str(K), **MODES[endpoint]}
            async with gate:
                response = await client.get(path, params=params)
            response.raise_for_status()
            body = response.json()
            ranks[index] = rank_of(query, body["items"])
            if body.get("degraded"):
                DEGRADED[endpoint] += 1

        await asyncio.gather(*(one(i, q) for i, q in enumerate(queries)))
    return ranks


def evaluate(
    bench: BenchStack, queries: Sequence[Query], concurrency: int
) -> dict[tuple[str, str], list[int | None]]:
    """Ranks per (class, endpoint), in the order of `queries` within each class."""
    results: dict[tuple[str, str], list[int | None]] = {}
    for endpoint in (*MODES, SUGGEST):
        for kind in CLASSES:
            if endpoint == SUGGEST and kind not in SUGGEST_CLASSES:
                continue
            members = [q for q in queries if q.kind == kind]
            if not members:
                continue
            started = time.perf_counter()
            stack = bench.stack
            results[(kind, endpoint)] = asyncio.run(
                ask_all(stack.api_url, stack.api_key, members, endpoint, concurrency)
            )
            print(
                f"  {endpoint:>8} | {kind}: {len(members)} queries in "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    return results


def table(
    queries: Sequence[Query], results: dict[tuple[str, str], list[int | None]], half: str | None
) -> str:
    endpoints = (*MODES, SUGGEST)
    heads = {
        "keyword": "keyword (`semantic_ratio=0`)",
        "semantic": "semantic (`semantic_ratio=1`)",
        "fused": "fused (default)",
        SUGGEST: "suggest",
    }
    lines = [
        "| class | n | metric | " + " | ".join(heads[e] for e in endpoints) + " |",
        "|---|---:|---|" + "---|" * len(endpoints),
    ]
    for kind in CLASSES:
        members = [q for q in queries if q.kind == kind]
        keep = [i for i, q in enumerate(members) if half is None or q.half == half]
        if not keep:
            continue
        cells: dict[str, dict[str, str]] = {}
        for endpoint in endpoints:
            ranks = results.get((kind, endpoint))
            if ranks is None:
                continue
            arrays = Scores([ranks[i] for i in keep]).arrays()
            cells[endpoint] = {metric: with_interval(v) for metric, v in arrays.items()}
        for metric in ("hit@1", "hit@10", "MRR"):
            row = [cells.get(e, {}).get(metric, "") for e in endpoints]
            lines.append(f"| {kind} | {len(keep)} | {metric} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def prefix_verdict(
    queries: Sequence[Query],
    results: dict[tuple[str, str], list[int | None]],
    half: str,
    groups: Counter[str],
) -> str:
    """The goal: with the first two words typed, the target in the top 10 for >= 90%."""
    members = [q for q in queries if q.kind == "two-word prefix"]
    keep = [i for i, q in enumerate(members) if q.half == half]
    if not keep:
        return ""
    figures = {
        endpoint: float(
            np.mean([1.0 if results[("two-word prefix", endpoint)][i] else 0.0 for i in keep])
        )
        for endpoint in (*MODES, SUGGEST)
        if ("two-word prefix", endpoint) in results
    }
    best = max(figures, key=lambda e: figures[e])
    ceiling = prefix_ceiling([members[i] for i in keep], groups)
    listed = ", ".join(f"{e} {v:.3f}" for e, v in figures.items())
    verdict = "met" if figures[best] >= 0.90 else "not met"
    return (
        f"two-word prefix, hit@10 ({half} half): {listed}; better: {best} {figures[best]:.3f} "
        f"(goal >= 0.90: **{verdict}**; ceiling {ceiling:.3f}: when more than {K} titles share "
        f"the first two words, {K} is all any list can show)"
    )


def prefix_groups(courses: Sequence[dict[str, Any]]) -> Counter[str]:
    """How many courses of the title classes share each normalised two-word prefix (over the
    whole catalogue: a sample of queries would make the groups look smaller)."""
    counts = Counter(normalise(c["title"]) for c in courses)
    prefixes = (two_word_prefix(c["title"]) for c in courses if counts[normalise(c["title"])] == 1)
    return Counter(normalise(p) for p in prefixes if p is not None)


def prefix_ceiling(members: Sequence[Query], groups: Counter[str]) -> float:
    """The best hit@10 any ranking can reach: the courses sharing a prefix share one answer."""
    return float(np.mean([min(1.0, K / groups[normalise(q.text)]) for q in members]))


# --- latency -----------------------------------------------------------------------------------
@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


async def drive(
    api_url: str,
    api_key: str | None,
    request: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]],
    texts: Iterator[str],
    clients: int,
    seconds: float,
    interval_s: float = 0.0,
) -> Load:
    """`clients` users, each sending its next request as soon as the last one answered (or, with
    `interval_s`, one every `interval_s`, like someone typing), for `seconds`."""
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers, limits=limits, timeout=60
    ) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def user(offset: float) -> None:
            nonlocal errors
            await asyncio.sleep(offset)
            next_at = time.perf_counter()
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                response = await request(client, next(texts))
                latencies.append(time.perf_counter() - sent)
                errors += response.status_code >= 400
                if interval_s:
                    next_at += interval_s
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        await asyncio.gather(*(user(i * interval_s / clients) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return Load(
        len(latencies),
        errors,
        elapsed,
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
    )


def latency(bench: BenchStack, courses: Sequence[dict[str, Any]], seconds: float) -> str:
    """Search at 1 and 20 clients per mode, suggest at 20, against semantic only, same run.

    Each measurement gets queries no earlier one sent (lower-cased titles, a slice each): a
    repeated query is answered from the API's query-embedding cache, which would flatter
    whichever path ran second."""
    pool = list(dict.fromkeys(c["title"].lower() for c in courses))
    random.Random(SEED).shuffle(pool)
    runs = [
        (f"search {mode}", mode, clients, 0.0)
        for mode in ("semantic", "keyword", "fused")
        for clients in (1, 20)
    ]
    runs += [
        ("suggest", SUGGEST, 1, 0.0),
        ("suggest", SUGGEST, 20, 0.0),
        ("suggest, 20 typists (4 keystrokes/s each)", SUGGEST, 20, 0.25),
    ]
    slice_size = max(1, len(pool) // len(runs))
    stack = bench.stack
    loads: dict[tuple[str, int, float], Load] = {}
    for n, (name, endpoint, clients, interval) in enumerate(runs):
        texts = _cycle(pool[n * slice_size : (n + 1) * slice_size] or pool)

        def request(client: httpx.AsyncClient, text: str, endpoint: str = endpoint) -> Any:
            if endpoint == SUGGEST:
                # What a search box sends while typing: the text so far.
                return client.get("/v1/search/suggest", params={"q": text[:12], "limit": 10})
            return client.get("/v1/search", params={"q": text, "limit": 10, **MODES[endpoint]})

        settle(bench.stack, timeout=30)
        loads[(name, clients, interval)] = asyncio.run(
            drive(stack.api_url, stack.api_key, request, texts, clients, seconds, interval)
        )
    base = {c: loads[("search semantic", c, 0.0)] for c in (1, 20)}
    lines = [
        "| path | clients | p50 ms | p99 ms | req/s | errors | p50 / semantic | "
        "p99 / semantic | req/s / semantic |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, clients, _), load in loads.items():
        ref = base[clients]
        lines.append(
            f"| {name} | {clients} | {load.p50_ms:.1f} | {load.p99_ms:.1f} | {load.per_s:.0f} | "
            f"{load.errors} | {load.p50_ms / ref.p50_ms:.2f} | {load.p99_ms / ref.p99_ms:.2f} | "
            f"{load.per_s / ref.per_s:.2f} |"
        )
    return "\n".join(lines)


def _cycle(values: Sequence[str]) -> Iterator[str]:
    while True:
        yield from values


# --- the run -----------------------------------------------------------------------------------
def load_catalogue(bench: BenchStack, courses: Sequence[dict[str, Any]], chunk: int) -> str:
    """Every course through `POST /v1/courses/bulk` (NDJSON), then wait for every task."""
    started = time.perf_counter()
    with bench.stack.client(timeout=300) as api:
        urls = []
        for start in range(0, len(courses), chunk):
            body = "\n".join(json.dumps(c) for c in courses[start : start + chunk]) + "\n"
            response = api.post(
                "/v1/courses/bulk",
                content=body.encode(),
                headers={"content-type": "application/x-ndjson"},
            )
            response.raise_for_status()
            urls.append(response.json()["status_url"])
        applied = failed = 0
        for url in urls:
            while (task := api.get(url).json())["status"] not in ("succeeded", "failed"):
                time.sleep(1)
            applied += task["counts"]["applied"]
            failed += task["counts"]["failed"]
    return (
        f"catalogue: {len(courses)} courses sent in {len(urls)} bulk requests, {applied} applied, "
        f"{failed} failed, in {time.perf_counter() - started:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--limit-courses", type=int, default=None, help="only the first N courses")
    parser.add_argument(
        "--per-class", type=int, default=None, help="at most N queries per class (all paraphrases)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--latency", action="store_true", help="also measure latency")
    parser.add_argument("--seconds", type=float, default=10, help="per latency measurement")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    path = shared_data_dir() / "coursera_courses.csv"
    if not path.exists():
        print(f"skipped: {path} is absent (set COURSEWISE_DATA_DIR to the shared data folder)")
        return
    courses = read_coursera_csv(path)[: args.limit_courses]
    queries = build_queries(courses, args.per_class)
    # Relevance of the answers with both sides, on a loaded machine too: a generous budget for
    # the semantic side (the latency suite measures the real one). Degraded answers are counted.
    budget = {"COURSEWISE_SEARCH_SEMANTIC_BUDGET_S": "10"}
    with own_stack("relevance", keep_logs=args.keep_logs, extra_env=budget) as bench:
        bench.stack.start_worker()
        bench.stack.start_api(workers=args.api_workers)
        loaded = load_catalogue(bench, courses, chunk=500)
        print(loaded, file=sys.stderr)
        settle(bench.stack)
        results = evaluate(bench, queries, args.concurrency)
        timing = latency(bench, courses, args.seconds) if args.latency else None
    print(describe(machine()))
    print(loaded)
    print("degraded answers: " + (", ".join(f"{k} {v}" for k, v in DEGRADED.items()) or "none"))
    counts = Counter(q.kind for q in queries)
    print("queries: " + ", ".join(f"{kind} {counts[kind]}" for kind in CLASSES))
    for half, label in (
        ("tuning", "tuning half (for choosing parameters)"),
        ("report", "report half (held out: quote these)"),
    ):
        print(f"\n### {label}\n")
        print(table(queries, results, half))
        print("\n" + prefix_verdict(queries, results, half, prefix_groups(courses)))
    if timing is not None:
        print(f"\n### latency ({args.api_workers} API processes, {len(courses)} courses)\n")
        print(timing)


if __name__ == "__main__":
    main()
