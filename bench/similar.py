"""Similar courses, through the public HTTP API, against the raw model's cosine.

Proxy of "related courses": MOOCCube co-enrolment held out by learner. Learners are split by a
hash of their id: 70% are loaded (their enrolments through `POST /v1/interactions`, what the
service may learn co-enrolment from), 30% are held out; course B is related to course A when a
held-out learner took both. Query courses (MOOCCube courses some held-out learner took with
another) are split in two halves by id: the tuning half chooses among a few settings
(in-process, `SimilarCourses` on the same database and Milvus), the reporting half is asked
`GET /v1/courses/{id}/similar?limit=10` with the shipped settings.

The catalogue also holds coursera_courses.csv (nobody took them). The baseline is the raw model:
exact cosine between the stored embeddings (all-MiniLM-L6-v2 over title + description + skills,
the text the service embeds), over the same catalogue, computed by the client. Recall@10 = the
share of a course's related courses found in its top 10 (of at most 10); intervals: paired
bootstrap over the reported courses.

    COURSEWISE_DATA_DIR=/work/shared/data .venv/bin/python -m bench.similar [--coursera N]
"""

import argparse
import asyncio
import hashlib
import itertools
import os
import platform
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from pymilvus import AsyncMilvusClient, MilvusClient

from bench import mooccube
from bench.environment import own_stack
from bench.evaluate_recs import coursera, load_http
from shared.catalog.filters import CourseFilters
from shared.db import create_engine, create_sessionmaker
from shared.milvus import client_kwargs
from shared.recommendations.similar import Signals, SimilarCourses, rank
from shared.settings import Settings

K = 10
DRAWS = 2000


def held_out(learner: str, share: float) -> bool:
    digest = hashlib.sha256(learner.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def related_sets(enrolments: dict[str, list[str]], learners: Sequence[str]) -> dict[str, set[str]]:
    related: dict[str, set[str]] = defaultdict(set)
    for learner in learners:
        for a, b in itertools.permutations(enrolments[learner], 2):
            related[a].add(b)
    return related


def recall(found: Sequence[str], relevant: set[str]) -> float:
    return len(set(found[:K]) & relevant) / min(K, len(relevant))


def raw_cosine(settings: Settings, queries: Sequence[str]) -> dict[str, list[str]]:
    """Exact nearest neighbours by cosine over every stored course embedding."""
    client = MilvusClient(**client_kwargs(settings))
    try:
        ids, vectors = [], []
        iterator = client.query_iterator(
            settings.milvus_collection, batch_size=1000, output_fields=["vector"]
        )
        while batch := iterator.next():
            for row in batch:
                ids.append(row["id"])
                vectors.append(row["vector"])
        iterator.close()
    finally:
        client.close()
    matrix = np.asarray(vectors, dtype=np.float64)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    position = {course_id: i for i, course_id in enumerate(ids)}
    result = {}
    for query in queries:
        scores = matrix @ matrix[position[query]]
        scores[position[query]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:K]
        result[query] = [ids[i] for i in top]
    return result


async def signals_of(settings: Settings, queries: Sequence[str]) -> dict[str, Signals]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    milvus = AsyncMilvusClient(**client_kwargs(settings))
    finder = SimilarCourses(milvus, settings)
    found: dict[str, Signals] = {}
    gate = asyncio.Semaphore(4)

    async def one(course_id: str) -> None:
        async with gate, sessionmaker() as session:
            found[course_id] = await finder.signals(session, course_id, CourseFilters())
        if found[course_id].degraded:  # tuning on answers without cosine would tune nothing
            raise RuntimeError(f"{course_id}: the vector index did not answer in time")

    try:
        await asyncio.gather(*(one(q) for q in queries))
    finally:
        await milvus.close()
        await engine.dispose()
    return found


async def served(base_url: str, key: str, queries: Sequence[str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    degraded: list[str] = []
    gate = asyncio.Semaphore(4)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as http:

        async def one(course_id: str) -> None:
            async with gate:
                response = await http.get(f"/v1/courses/{course_id}/similar", params={"limit": K})
                response.raise_for_status()
                body = response.json()
                result[course_id] = [item["id"] for item in body["items"]]
                if body["degraded"]:
                    degraded.append(course_id)

        await asyncio.gather(*(one(q) for q in queries))
    # What a client got, degraded answers included; said, so a figure is not read without it.
    print(f"served: {len(degraded)} of {len(queries)} answers degraded (no vector index)")
    return result


def mean_recall(
    lists: dict[str, list[str]], queries: Sequence[str], related: dict[str, set[str]]
) -> np.ndarray:
    return np.asarray([recall(lists[q], related[q]) for q in queries])


def ratio_band(model: np.ndarray, baseline: np.ndarray, seed: int = 0) -> tuple[float, str]:
    picks = np.random.default_rng(seed).integers(0, len(model), size=(DRAWS, len(model)))
    draws = model[picks].mean(axis=1) / np.maximum(baseline[picks].mean(axis=1), 1e-12)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(model.mean() / max(baseline.mean(), 1e-12)), f"{low:.2f}-{high:.2f}"


GRID: list[dict[str, float]] = [
    {"similar_co_taken": co, "similar_skills": skills, "similar_shrink": shrink}
    for co in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    for skills in (0.0, 0.1)
    for shrink in (0.0, 2.0, 10.0)
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--coursera", type=int, default=None, help="only N coursera courses")
    parser.add_argument("--held-out", type=float, default=0.3, help="share of learners held out")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if not mooccube.available():
        raise SystemExit(f"skipped: {mooccube.data_dir()} is absent")
    enrolments = mooccube.enrolments()
    hidden = sorted(learner for learner in enrolments if held_out(learner, args.held_out))
    hidden_set = set(hidden)
    train_pairs = [
        (learner, course)
        for learner, courses in enrolments.items()
        if learner not in hidden_set
        for course in courses
    ]
    related = related_sets(enrolments, hidden)
    queries = sorted(related)
    tune_set, report_set = queries[0::2], queries[1::2]
    courses: list[dict[str, Any]] = mooccube.courses() + coursera(args.coursera)
    started = time.perf_counter()
    with own_stack("similar", keep_logs=args.keep) as bench:
        stack = bench.stack
        os.environ.update(bench.env)
        assert stack.api_key is not None
        stack.start_worker()
        stack.start_api(workers=1)
        with httpx.Client(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.api_key}"},
            timeout=120,
        ) as api:
            timings = load_http(api, courses, train_pairs, retrain=False)
        settings = bench.settings
        raw = raw_cosine(settings, queries)
        signals = asyncio.run(signals_of(settings, queries))
        served_started = time.perf_counter()
        lists = asyncio.run(served(stack.api_url, stack.api_key, report_set))
        served_s = time.perf_counter() - served_started
    total_s = time.perf_counter() - started

    def under(update: dict[str, float], among: Sequence[str]) -> dict[str, list[str]]:
        tuned = settings.model_copy(update=update)
        return {q: [s.course_id for s in rank(signals[q], tuned, K)] for q in among}

    tuning = sorted(
        (
            (float(mean_recall(under(point, tune_set), tune_set, related).mean()), i)
            for i, point in enumerate(GRID)
        ),
        reverse=True,
    )
    best = GRID[tuning[0][1]]
    shipped = {name: float(getattr(settings, name)) for name in GRID[0]}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()}")
    print(
        f"data: {len(courses)} courses ({len(courses) - len(mooccube.courses())} untaken "
        f"coursera), {len(train_pairs)} enrolments loaded, {len(hidden)} learners held out; "
        f"{len(queries)} query courses ({len(tune_set)} tuning, {len(report_set)} reported)"
    )
    print(f"load: {', '.join(f'{k} {v:.1f}' for k, v in timings.items())}; total {total_s:.0f} s")
    print(f"served {len(report_set)} similar lists over HTTP in {served_s:.1f} s")
    raw_tune = mean_recall(raw, tune_set, related).mean()
    print(f"tuning half (raw cosine {raw_tune:.4f}); best settings:")
    for score, i in tuning[:5]:
        print(f"  {GRID[i]}: recall@10 {score:.4f}")
    print(f"shipped: {shipped}")
    baseline = mean_recall(raw, report_set, related)
    rows = {
        "raw model cosine (exact, client)": baseline,
        "service signals, cosine only (in-process)": mean_recall(
            under({"similar_co_taken": 0.0, "similar_skills": 0.0}, report_set),
            report_set,
            related,
        ),
        "tuning half's best (in-process)": mean_recall(
            under(best, report_set), report_set, related
        ),
        "**served through HTTP (shipped settings)**": mean_recall(lists, report_set, related),
    }
    heading = f"similar courses (report half, {len(report_set)} courses)"
    print(f"\n| {heading} | recall@10 | vs raw cosine |")
    print("|---|---|---|")
    for name, values in rows.items():
        ratio, band = ratio_band(values, baseline)
        suffix = "" if values is baseline else f" ({band})"
        print(f"| {name} | {values.mean():.4f} | {ratio:.3f}x{suffix} |")


if __name__ == "__main__":
    main()
