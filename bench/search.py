"""Search relevance on Coursera titles: keyword vs semantic vs fused, and the choice of fusion.

Starts its own stack, loads `--courses` Coursera rows through the write API, then asks
`GET /v1/search` (explain=true) for each course's exact title, the title with two adjacent
letters of one word swapped, and its first two words, once keyword-only (semantic_ratio=0) and
once semantic-only (semantic_ratio=1). The two lists are fused here with the service's own code
(shared/catalog/ranking.py) for every method and ratio, so the choice is made on a random half
of the titles (tuning) and reported on the other half.

    .venv/bin/python -m bench.search [--courses 1000] [--lists lists.json]
"""

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.environment import own_stack
from shared.catalog.ranking import TIERS, Fusion, fuse
from shared.catalog.sources import read_coursera_csv, shared_data_dir

KINDS = ("exact", "transposed", "two_words", "description")
RATIOS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
Lists = dict[str, dict[str, Any]]


def transposed(title: str, rng: random.Random) -> str | None:
    """The title with two adjacent, different letters of one word (4+ letters) swapped."""
    words = title.split()
    choices = [
        (w, i)
        for w, word in enumerate(words)
        if len(word) >= 4
        for i in range(len(word) - 1)
        if word[i].isalpha() and word[i + 1].isalpha() and word[i] != word[i + 1]
    ]
    if not choices:
        return None
    w, i = rng.choice(choices)
    word = words[w]
    words[w] = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return " ".join(words)


def description_query(course: dict[str, Any], rng: random.Random) -> str | None:
    """Eight consecutive description words, none of them a title word: the course in other
    words (a rough stand-in for a paraphrase)."""
    title_words = {w.lower().strip(".,:;()") for w in course["title"].split()}
    words = [
        w
        for w in course["description"].split()
        if w.lower().strip(".,:;()") not in title_words and w.isascii()
    ]
    if len(words) < 12:
        return None
    start = rng.randrange(0, min(40, len(words) - 8))
    return " ".join(words[start : start + 8])


def queries(courses: list[dict[str, Any]], seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    found = []
    for course in courses:
        variants = {
            "exact": course["title"],
            "transposed": transposed(course["title"], rng),
            "two_words": " ".join(course["title"].split()[:2]),
            "description": description_query(course, rng),
        }
        for kind, q in variants.items():
            if q:
                found.append({"id": course["id"], "title": course["title"], "kind": kind, "q": q})
    return found


async def collect(api_url: str, key: str, wanted: list[dict[str, str]]) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=2)
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers, timeout=60, limits=limits
    ) as client:
        semaphore = asyncio.Semaphore(2)

        async def side(q: str, ratio: float) -> list[dict[str, Any]]:
            params: dict[str, str | float] = {
                "q": q,
                "semantic_ratio": ratio,
                "explain": "true",
                "limit": 50,
            }
            async with semaphore:
                response = await client.get("/v1/search", params=params)
            response.raise_for_status()
            assert not response.json()["degraded"], "the semantic side missed its budget"
            return [
                {"id": hit["id"], "title": hit["title"], **hit["explain"]}
                for hit in response.json()["items"]
            ]

        async def one(query: dict[str, str]) -> dict[str, Any]:
            keyword, semantic = await asyncio.gather(side(query["q"], 0), side(query["q"], 1))
            return {**query, "keyword": keyword, "semantic": semantic}

        return list(await asyncio.gather(*(one(query) for query in wanted)))


def load_and_collect(courses: int, titles: int, seed: int) -> list[dict[str, Any]]:
    catalogue = read_coursera_csv(shared_data_dir() / "coursera_courses.csv")
    random.Random(seed).shuffle(catalogue)
    catalogue = catalogue[:courses]
    # A loaded machine must not turn the semantic side into degraded answers mid-measurement.
    extra = {"COURSEWISE_SEARCH_SEMANTIC_BUDGET_S": "30", "COURSEWISE_LOG_LEVEL": "WARNING"}
    with own_stack("search", extra_env=extra) as bench:
        stack = bench.stack
        stack.start_worker()
        stack.start_api(workers=1)
        with stack.client(timeout=120) as api:
            task_ids = []
            for start in range(0, len(catalogue), 500):
                response = api.post("/v1/courses/bulk", json=catalogue[start : start + 500])
                response.raise_for_status()
                task_ids.append(response.json()["task_id"])
            for task_id in task_ids:
                while api.get(f"/v1/tasks/{task_id}").json()["status"] not in (
                    "succeeded",
                    "failed",
                ):
                    time.sleep(1)
        assert stack.api_key is not None
        wanted = queries(catalogue[:titles], seed)
        results = asyncio.run(collect(stack.api_url, stack.api_key, wanted))
        with stack.client(timeout=120) as api:
            print(json.dumps({"latency_ms": latency(api, catalogue[titles:], seed)}))
        return results


def latency(api: httpx.Client, courses: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """Sequential searches, one at a time, each query new to the API (no embedding cached):
    p50 / p95 client-side milliseconds per semantic_ratio."""
    rng = random.Random(seed)
    texts = [q for c in courses if (q := description_query(c, rng))]
    found: dict[str, Any] = {}
    for n, ratio in enumerate((0.0, 0.5, 1.0)):
        times = []
        for q in texts[n * 60 : (n + 1) * 60]:
            started = time.perf_counter()
            response = api.get("/v1/search", params={"q": q, "semantic_ratio": ratio})
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        times.sort()
        found[str(ratio)] = {
            "p50": round(times[len(times) // 2], 1),
            "p95": round(times[int(len(times) * 0.95)], 1),
        }
    return found


def ordered(
    result: dict[str, Any], method: Fusion | None, ratio: float, tiers: set[str]
) -> list[str]:
    """The ids as the service orders them with this fusion (None: one side's own order)."""
    keyword = sorted(result["keyword"], key=lambda h: h["keyword_rank"] or 10**9)
    semantic = sorted(result["semantic"], key=lambda h: h["semantic_rank"] or 10**9)
    if method is None:
        return [h["id"] for h in (semantic if ratio == 1 else keyword)]
    matches = {h["id"]: h["title_match"] for h in keyword + semantic}
    kw = [(h["id"], h["keyword_score"]) for h in keyword if h["keyword_rank"]] if ratio < 1 else []
    sem = [(h["id"], h["semantic_score"]) for h in semantic if h["semantic_rank"]]
    fused = fuse(kw, sem if ratio > 0 else [], ratio, method)

    def score(course_id: str) -> float:
        match = matches.get(course_id)
        return (TIERS[match] if match in tiers else 0) + fused[course_id]

    return sorted(fused, key=lambda i: (-score(i), i))


def _same(title: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in title.lower()).split())


def hits(results: list[dict[str, Any]], **how: Any) -> dict[str, float]:
    """hit@1 for exact and transposed titles, hit@10 for two words, hit@5 for descriptions; a
    course with the very same title counts as the one sought (the catalogue repeats titles)."""
    at = {"exact": 1, "transposed": 1, "two_words": 10, "description": 5}
    scores: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for result in results:
        titles = {h["id"]: _same(h["title"]) for h in result["keyword"] + result["semantic"]}
        found = ordered(result, **how)[: at[result["kind"]]]
        wanted = _same(result["title"])
        ok = result["id"] in found or any(titles.get(i) == wanted for i in found)
        scores[result["kind"]].append(float(ok))
    return {kind: round(statistics.fmean(v), 3) for kind, v in scores.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--courses", type=int, default=1000)
    parser.add_argument("--titles", type=int, default=400, help="courses whose titles are asked")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--lists", type=Path, help="reuse (or write) the collected lists")
    args = parser.parse_args()
    if args.lists and args.lists.exists():
        results = json.loads(args.lists.read_text())
    else:
        results = load_and_collect(args.courses, args.titles, args.seed)
        if args.lists:
            args.lists.write_text(json.dumps(results))
    ids = sorted({r["id"] for r in results})
    random.Random(args.seed).shuffle(ids)
    tuning_ids = set(ids[: len(ids) // 2])
    tuning = [r for r in results if r["id"] in tuning_ids]
    held_out = [r for r in results if r["id"] not in tuning_ids]
    all_tiers = {"exact", "typo", "prefix"}
    report: dict[str, Any] = {"queries": len(results), "tuning_titles": len(tuning_ids)}
    for name, sample in (("tuning", tuning), ("held_out", held_out)):
        rows = report.setdefault(name, {})
        rows["keyword only (no tiers)"] = hits(sample, method=None, ratio=0, tiers=set())
        rows["semantic only (today)"] = hits(sample, method=None, ratio=1, tiers=set())
        for method in ("rrf", "score"):
            for ratio in RATIOS:
                rows[f"{method} {ratio}"] = hits(
                    sample, method=method, ratio=ratio, tiers=all_tiers
                )
            rows[f"{method} 0.5 no prefix tier"] = hits(
                sample, method=method, ratio=0.5, tiers={"exact", "typo"}
            )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
