"""Evaluation of the recommendations on MOOCCube, through the public HTTP API by default.

Every learner with at least two enrolments holds out one (the last in file order; the data has
no timestamps); learners are split in two halves: the blend is tuned on one, every figure is
reported on the other.

Default (HTTP): a fresh stack of its own (API, worker, training worker: `own_stack`); the
MOOCCube courses and every course of coursera_courses.csv (untaken) through `POST
/v1/courses/bulk`, every enrolment but the held-out ones through `POST /v1/interactions`, then
`POST /v1/admin/retrain`, each waited for as a client would. The blend is tuned in-process
(`Recommender.candidates` on the same database and Milvus) on the tuning half; the API is then
restarted with the chosen settings and asked `GET /v1/users/{id}/recommendations?limit=10` for
every learner of the reporting half. Popularity is the client's own: distinct learners per
course in the interactions it sent, the learner's own courses excluded.

`--in-process`: the same data written with the worker's own code, no API (faster); the reported
lists come from `Recommender.recommend`.

    COURSEWISE_DATA_DIR=/work/shared/data .venv/bin/python -m bench.evaluate_recs \
        [--sample N] [--in-process] [--serve shipped|tuned] [--coursera N] [--keep]
"""

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
from pymilvus import AsyncMilvusClient

from bench import mooccube
from bench.environment import own_stack
from devstack.stack import LocalStack, free_port
from shared.catalog.filters import CourseFilters
from shared.catalog.indexing import CourseIndexer
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import CourseIn
from shared.catalog.search import CourseSearch
from shared.catalog.sources import read_coursera_csv, shared_data_dir
from shared.catalog.writes import apply_upserts, chunked
from shared.db import create_engine, create_sessionmaker, transaction
from shared.embedding import get_embedder
from shared.learners.repository import LearnerRepository
from shared.learners.schemas import InteractionIn
from shared.learners.writes import InteractionItem, apply_interactions
from shared.milvus import client_kwargs, connect
from shared.recommendations.service import (
    BlendWeights,
    Candidates,
    Recommender,
    blend,
    own_subjects,
)
from shared.recommendations.training import train
from shared.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432"
K = 10
SINGLE = {
    "popularity": BlendWeights(0, 0, 1),
    "content": BlendWeights(1, 0, 0),
    "ALS": BlendWeights(0, 1, 0),
}


@dataclass
class Scores:
    hits: list[float] = field(default_factory=list)
    gains: list[float] = field(default_factory=list)

    def add(self, ranked: Sequence[str], relevant: str) -> None:
        top = list(ranked[:K])
        if relevant in top:
            self.hits.append(1.0)
            self.gains.append(1.0 / math.log2(top.index(relevant) + 2))
        else:
            self.hits.append(0.0)
            self.gains.append(0.0)

    @property
    def recall(self) -> float:
        return sum(self.hits) / max(1, len(self.hits))

    @property
    def ndcg(self) -> float:
        return sum(self.gains) / max(1, len(self.gains))


GOAL = 1.10  # the issue's: hybrid NDCG@10 at least 1.10x popularity, through HTTP
DRAWS = 2000


def ratio_draws(model: Scores, baseline: Scores, seed: int = 0) -> np.ndarray:
    """NDCG(model) / NDCG(baseline) over bootstrap resamples of the same learners (paired: a
    resample keeps each learner's two gains together, so the ratio's noise is the learners')."""
    a, b = np.asarray(model.gains), np.asarray(baseline.gains)
    assert len(a) == len(b), "both lists must score the same learners, in the same order"
    picks = np.random.default_rng(seed).integers(0, len(a), size=(DRAWS, len(a)))
    return np.asarray(a[picks].mean(axis=1) / np.maximum(b[picks].mean(axis=1), 1e-12))


def interval(draws: np.ndarray) -> str:
    low, high = np.percentile(draws, [2.5, 97.5])
    return f"{low:.2f}-{high:.2f}"


def halves(held_out: dict[str, str], sample: int | None) -> tuple[list[str], list[str]]:
    """The evaluated learners, split into a tuning half and a reporting half."""
    learners = sorted(held_out)
    if sample:
        learners = learners[:: max(1, len(learners) // sample)][:sample]
    return learners[0::2], learners[1::2]


def split(enrolments: dict[str, list[str]]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Training pairs (learner, course) and the held-out course of each eligible learner."""
    train_pairs, held_out = [], {}
    for learner, courses in enrolments.items():
        if len(courses) >= 2:
            held_out[learner] = courses[-1]
            courses = courses[:-1]
        train_pairs += [(learner, course) for course in courses]
    return train_pairs, held_out


def coursera(limit: int | None) -> list[dict[str, Any]]:
    """Courses nobody in MOOCCube took: a catalogue larger than the learners' one."""
    rows = read_coursera_csv(shared_data_dir() / "coursera_courses.csv")
    return rows if limit is None else rows[:limit]


async def ingest(
    settings: Settings, train_pairs: list[tuple[str, str]], extra: list[dict[str, Any]]
) -> dict[str, float]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    milvus = connect(settings)
    indexer = CourseIndexer(
        sessionmaker, milvus, settings.milvus_collection, get_embedder(settings)
    )
    timings = {}
    try:
        started = time.perf_counter()
        every = mooccube.courses() + extra
        courses = [(i, CourseIn.model_validate(c)) for i, c in enumerate(every)]
        for chunk in chunked(courses, settings.apply_chunk_size):
            async with transaction(sessionmaker) as session:
                outcome = await apply_upserts(CourseRepository(session), chunk, 1)
            await indexer.sync(outcome.touched)
        timings["courses_s"] = time.perf_counter() - started

        started = time.perf_counter()
        now = datetime.now(UTC)
        records = [
            InteractionItem.model_validate(
                InteractionIn.model_validate(
                    {"user_id": learner, "course_id": course, "type": "enroll"}
                ).to_record(now)
            )
            for learner, course in train_pairs
        ]
        for number, batch in enumerate(chunked(records, settings.interactions_max_items)):
            async with transaction(sessionmaker) as session:
                outcome_ = await apply_interactions(
                    LearnerRepository(session),
                    CourseRepository(session),
                    f"evaluation-{number}",
                    list(enumerate(batch)),
                    number + 2,
                )
            assert not outcome_.errors, outcome_.errors[:3]
        timings["interactions_s"] = time.perf_counter() - started

        report = await train(sessionmaker, milvus, settings)
        timings["als_fit_s"] = report.train_seconds
        timings["als_total_s"] = report.total_seconds
        timings["als_learners"] = report.learners
        timings["als_interactions"] = report.interactions
    finally:
        milvus.close()
        await engine.dispose()
    return timings


async def collect(
    settings: Settings, learners: list[str], concurrency: int = 4
) -> dict[str, Candidates]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    milvus = AsyncMilvusClient(**client_kwargs(settings))
    search = CourseSearch(milvus, settings.milvus_collection, get_embedder(settings))
    recommender = Recommender(milvus, settings, search)
    found: dict[str, Candidates] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(learner: str) -> None:
        async with gate, sessionmaker() as session:
            candidates = await recommender.candidates(session, learner, CourseFilters())
            # Scoring needs the scores only: the vectors (about 0.8 MB a learner) would hold
            # gigabytes for the whole evaluation.
            candidates.vectors.clear()
            candidates.history_vectors.clear()
            found[learner] = candidates

    try:
        await asyncio.gather(*(one(learner) for learner in learners))
    finally:
        await milvus.close()
        await engine.dispose()
    return found


async def served(
    settings: Settings, learners: list[str], weights: BlendWeights | None = None
) -> dict[str, list[str]]:
    """The top K exactly as the API route computes it (`Recommender.recommend`)."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    milvus = AsyncMilvusClient(**client_kwargs(settings))
    search = CourseSearch(milvus, settings.milvus_collection, get_embedder(settings))
    recommender = Recommender(milvus, settings, search)
    result: dict[str, list[str]] = {}
    gate = asyncio.Semaphore(4)

    async def one(learner: str) -> None:
        async with gate, sessionmaker() as session:
            page = await recommender.recommend(
                session, learner, CourseFilters(), limit=K, weights=weights
            )
            result[learner] = [item.id for item in page.items]

    try:
        await asyncio.gather(*(one(learner) for learner in learners))
    finally:
        await milvus.close()
        await engine.dispose()
    return result


def ranked(found: Candidates, weights: BlendWeights, slots: int) -> list[str]:
    """The top K `Recommender.recommend` serves from these candidates (no filters, no profile)."""
    order = [r.course_id for r in blend(found, weights, 1_000_000)]
    return own_subjects(order, found.nearest, K, slots)


def evaluate(
    candidates: dict[str, Candidates],
    held_out: dict[str, str],
    weights: BlendWeights,
    slots: int = 0,
) -> Scores:
    scores = Scores()
    for learner, found in candidates.items():
        scores.add(ranked(found, weights, slots), held_out[learner])
    return scores


def score_lists(
    lists: dict[str, list[str]], learners: list[str], held_out: dict[str, str]
) -> Scores:
    scores = Scores()
    for learner in learners:
        scores.add(lists[learner], held_out[learner])
    return scores


def as_before(found: Candidates, pool: int) -> Candidates:
    """The candidates as the service scored them before 2026-12-02: popularity only for the
    `pool` most popular unseen courses (0 for every other candidate), content only for the
    nearest and those popular ones (the lowest of them for the rest)."""
    top = sorted(found.popular, key=lambda c: (-found.popular[c], c))[:pool]
    scored = set(found.nearest) | set(top)
    return Candidates(
        strategy=found.strategy,
        seen=found.seen,
        history=found.history,
        content={c: v for c, v in found.content.items() if c in scored},
        als=found.als,
        popular={c: found.popular[c] for c in top},
    )


def client_popularity(
    train_pairs: list[tuple[str, str]], learners: list[str]
) -> dict[str, list[str]]:
    """What a client computes from the interactions it sent: courses by distinct learners, the
    learner's own courses excluded."""
    takers: dict[str, set[str]] = defaultdict(set)
    taken: dict[str, set[str]] = defaultdict(set)
    for learner, course in train_pairs:
        takers[course].add(learner)
        taken[learner].add(course)
    order = sorted(takers, key=lambda c: (-len(takers[c]), c))
    lists = {}
    for learner in learners:
        lists[learner] = [c for c in order if c not in taken[learner]][:K]
    return lists


def bucket(history: int) -> str:
    return "1" if history == 1 else "2" if history == 2 else "3-5" if history <= 5 else "6+"


BUCKETS = ("1", "2", "3-5", "6+")
BUCKET_SIZES = {"1": [1], "2": [2], "3-5": [3, 4, 5], "6+": list(range(6, 1001))}


def wait(api: httpx.Client, accepted: httpx.Response, timeout: float = 1800) -> dict[str, Any]:
    assert accepted.status_code == 202, accepted.text
    url = accepted.json()["status_url"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = api.get(url).json()
        if task["status"] in ("succeeded", "failed"):
            assert task["status"] == "succeeded", task
            return dict(task)
        time.sleep(0.5)
    raise TimeoutError(url)


def load_http(
    api: httpx.Client,
    courses: list[dict[str, Any]],
    train_pairs: list[tuple[str, str]],
    *,
    retrain: bool = True,
) -> dict[str, float]:
    """Everything through the public write API, each task waited for."""
    timings = {}
    started = time.perf_counter()
    for start in range(0, len(courses), 1000):
        wait(api, api.post("/v1/courses/bulk", json=courses[start : start + 1000]))
    timings["courses_s"] = time.perf_counter() - started
    started = time.perf_counter()
    items = [
        {"user_id": learner, "course_id": course, "type": "enroll"}
        for learner, course in train_pairs
    ]
    for start in range(0, len(items), 1000):
        task = wait(api, api.post("/v1/interactions", json=items[start : start + 1000]))
        assert not task["counts"]["failed"], task
    timings["interactions_s"] = time.perf_counter() - started
    if not retrain:
        return timings
    started = time.perf_counter()
    wait(api, api.post("/v1/admin/retrain"))
    timings["retrain_s"] = time.perf_counter() - started
    return timings


async def http_lists(
    base_url: str, key: str, learners: list[str], concurrency: int = 4
) -> dict[str, list[str]]:
    """`GET /v1/users/{id}/recommendations?limit=10` for each learner, as a client asks it."""
    result: dict[str, list[str]] = {}
    degraded: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as http:

        async def one(learner: str) -> None:
            async with gate:
                response = await http.get(
                    f"/v1/users/{learner}/recommendations", params={"limit": K}
                )
                response.raise_for_status()
                body = response.json()
                result[learner] = [item["id"] for item in body["items"]]
                if body["degraded"]:
                    degraded.append(learner)

        await asyncio.gather(*(one(learner) for learner in learners))
    # What a client got, degraded answers included; said, so a figure is not read without it.
    print(f"served: {len(degraded)} of {len(learners)} lists degraded (no vector index)")
    return result


@dataclass
class Tuned:
    weights: BlendWeights
    slots: int
    popular_histories: list[int]
    top: list[tuple[float, BlendWeights]]
    by_slots: dict[int, float]
    # learners, client popularity, hybrid, served popularity (with own places)
    by_bucket: dict[str, tuple[int, float, float, float]]


def tune(
    candidates: dict[str, Candidates],
    held_out: dict[str, str],
    popular: dict[str, list[str]],
    histories: dict[str, int],
    step: float,
) -> Tuned:
    """The blend with the best NDCG on these (tuning) learners, then the number of places kept
    for the learner's own subjects (at least one: the contract), then how it compares with
    popularity by history length."""
    grid = [round(i * step, 4) for i in range(round(1 / step) + 1)]
    results = []
    for content, als in itertools.product(grid, grid):
        if content + als > 1 + 1e-9:
            continue
        weights = BlendWeights(content, als, round(1 - content - als, 4))
        results.append((evaluate(candidates, held_out, weights).ndcg, weights))
    results.sort(key=lambda r: -r[0])
    best = results[0][1]
    by_slots = {n: evaluate(candidates, held_out, best, n).ndcg for n in range(0, 4)}
    slots = max((1, 2, 3), key=lambda n: (by_slots[n], -n))
    by_bucket = {}
    for key in BUCKETS:
        members = {
            learner: found
            for learner, found in candidates.items()
            if bucket(histories[learner]) == key
        }
        hybrid = evaluate(members, held_out, best, slots)
        baseline = score_lists(popular, list(members), held_out)
        popular_ = evaluate(members, held_out, BlendWeights(0, 0, 1), slots)
        by_bucket[key] = (len(members), baseline.ndcg, hybrid.ndcg, popular_.ndcg)
    # Popularity where the blend is no better on the tuning half (as served: own places kept).
    fallback = [
        n
        for key, (_, _, hybrid_ndcg, popular_ndcg) in by_bucket.items()
        if popular_ndcg >= hybrid_ndcg
        for n in BUCKET_SIZES[key]
    ]
    return Tuned(best, slots, fallback, results[:5], by_slots, by_bucket)


def table(rows: dict[str, Scores], baseline: str) -> str:
    lines = [
        f"| model | Recall@{K} | NDCG@{K} | vs popularity | 95% interval |",
        "|---|---|---|---|---|",
    ]
    base = rows[baseline]
    for name, scores in rows.items():
        band = "" if name == baseline else interval(ratio_draws(scores, base))
        lines.append(
            f"| {name} | {scores.recall:.4f} | {scores.ndcg:.4f} | "
            f"{scores.ndcg / base.ndcg:.3f}x | {band} |"
        )
    return "\n".join(lines)


def bucket_table(
    lists: dict[str, dict[str, list[str]]],
    learners: list[str],
    held_out: dict[str, str],
    histories: dict[str, int],
    baseline: str,
) -> str:
    names = list(lists)
    lines = [
        "| enrolments | learners | "
        + " | ".join(names)
        + f" | ratio to {baseline}, 95% interval |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    model = names[-1]
    for key in BUCKETS:
        members = [learner for learner in learners if bucket(histories[learner]) == key]
        if not members:
            continue
        scored = {name: score_lists(lists[name], members, held_out) for name in names}
        ratio = scored[model].ndcg / max(scored[baseline].ndcg, 1e-12)
        band = interval(ratio_draws(scored[model], scored[baseline]))
        lines.append(
            f"| {key} | {len(members)} | "
            + " | ".join(f"{scored[n].ndcg:.4f}" for n in names)
            + f" | {ratio:.3f}x ({band}) |"
        )
    return "\n".join(lines)


def with_blend(settings: Settings, tuned: Tuned) -> dict[str, str]:
    return {
        "COURSEWISE_BLEND_CONTENT": str(tuned.weights.content),
        "COURSEWISE_BLEND_ALS": str(tuned.weights.als),
        "COURSEWISE_BLEND_POPULAR": str(tuned.weights.popular),
        "COURSEWISE_REC_OWN_SLOTS": str(tuned.slots),
        "COURSEWISE_REC_POPULAR_HISTORIES": json.dumps(tuned.popular_histories),
    }


def tuned_settings(settings: Settings, tuned: Tuned) -> Settings:
    return settings.model_copy(
        update={
            "blend_content": tuned.weights.content,
            "blend_als": tuned.weights.als,
            "blend_popular": tuned.weights.popular,
            "rec_own_slots": tuned.slots,
            "rec_popular_histories": tuned.popular_histories,
        }
    )


def serving_settings(args: argparse.Namespace, settings: Settings, tuned: Tuned) -> Settings:
    """The settings the reported lists are served with."""
    return tuned_settings(settings, tuned) if args.serve == "tuned" else settings


async def _pg(sql: str) -> None:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@dataclass
class Run:
    timings: dict[str, float]
    tuned: Tuned
    candidates: dict[str, Candidates]
    served: dict[str, list[str]]  # the reported lists (HTTP, or Recommender.recommend)
    in_process: dict[str, list[str]]  # Recommender.recommend, same settings
    served_s: float
    shipped: Settings


def run_http(
    args: argparse.Namespace,
    train_pairs: list[tuple[str, str]],
    held_out: dict[str, str],
    tune_set: list[str],
    report_set: list[str],
    popular: dict[str, list[str]],
    histories: dict[str, int],
) -> Run:
    courses = mooccube.courses() + coursera(args.coursera)
    with own_stack("evalrecs", keep_logs=args.keep) as bench:
        stack = bench.stack
        os.environ.update(bench.env)
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        assert stack.api_key is not None
        stack.start_worker()
        stack.start_training_worker()
        stack.start_beat()
        loader = stack.start_api(workers=1, timeout=600)
        with httpx.Client(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.api_key}"},
            timeout=120,
        ) as api:
            timings = load_http(api, courses, train_pairs)
        candidates = asyncio.run(collect(bench.settings, tune_set + report_set))
        tuned = tune(
            {learner: candidates[learner] for learner in tune_set},
            held_out,
            popular,
            histories,
            args.step,
        )
        # The API restarted: with the shipped settings (its environment names no blend), or
        # with what the tuning half chose.
        loader.stop()
        stack.processes.remove(loader)
        if args.serve == "tuned":
            stack.env.update(with_blend(bench.settings, tuned))
        stack.start_api(workers=2, timeout=600)
        started = time.perf_counter()
        served_lists = asyncio.run(http_lists(stack.api_url, stack.api_key, report_set))
        served_s = time.perf_counter() - started
        shipped = serving_settings(args, bench.settings, tuned)
        in_process = asyncio.run(served(shipped, report_set))
    return Run(timings, tuned, candidates, served_lists, in_process, served_s, shipped)


def run_in_process(
    args: argparse.Namespace,
    train_pairs: list[tuple[str, str]],
    held_out: dict[str, str],
    tune_set: list[str],
    report_set: list[str],
    popular: dict[str, list[str]],
    histories: dict[str, int],
) -> Run:
    run = uuid.uuid4().hex[:8]
    database, vhost = f"coursewise_eval_{run}", f"coursewise_eval_{run}"
    env = {
        "COURSEWISE_DATABASE_URL": f"{PG.replace('postgresql', 'postgresql+asyncpg')}/{database}",
        "COURSEWISE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "COURSEWISE_MILVUS_URI": f"http://127.0.0.1:{free_port()}",
        "COURSEWISE_MILVUS_COLLECTION": f"eval_{run}",
    }
    os.environ.update(env)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    settings = Settings()
    var_dir = Path(tempfile.mkdtemp(prefix="coursewise-eval-"))
    asyncio.run(_pg(f'CREATE DATABASE "{database}"'))
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    stack = LocalStack(env=env, var_dir=var_dir)
    try:
        with stack.running():
            stack.start_milvus(var_dir / "milvus-data")
            stack.prestart()
            timings = asyncio.run(ingest(settings, train_pairs, coursera(args.coursera)))
            candidates = asyncio.run(collect(settings, tune_set + report_set))
            tuned = tune(
                {learner: candidates[learner] for learner in tune_set},
                held_out,
                popular,
                histories,
                args.step,
            )
            shipped = serving_settings(args, settings, tuned)
            started = time.perf_counter()
            lists = asyncio.run(served(shipped, report_set))
            served_s = time.perf_counter() - started
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)
    return Run(timings, tuned, candidates, lists, lists, served_s, shipped)


def _ranges(values: list[int]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=int, default=None, help="evaluate N learners only")
    parser.add_argument("--step", type=float, default=0.05, help="blend grid step")
    parser.add_argument("--in-process", action="store_true", help="no API: the worker's code")
    parser.add_argument(
        "--serve",
        choices=("shipped", "tuned"),
        default="shipped",
        help="serve the shipped defaults (default) or the tuning half's choice",
    )
    parser.add_argument("--coursera", type=int, default=None, help="only N coursera courses")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args()
    if not mooccube.available():
        raise SystemExit(f"skipped: {mooccube.data_dir()} is absent")

    enrolments = mooccube.enrolments()
    train_pairs, held_out = split(enrolments)
    tune_set, report_set = halves(held_out, args.sample)
    histories: dict[str, int] = defaultdict(int)
    for learner, _ in train_pairs:
        histories[learner] += 1
    popular = client_popularity(train_pairs, tune_set + report_set)
    runner = run_in_process if args.in_process else run_http
    started = time.perf_counter()
    run = runner(args, train_pairs, held_out, tune_set, report_set, popular, histories)
    total_s = time.perf_counter() - started
    tuned = run.tuned

    mode = "Recommender.recommend (in-process)" if args.in_process else "HTTP GET"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"data: {len(mooccube.courses())} MOOCCube courses + {len(coursera(args.coursera))} "
        f"untaken coursera courses, {len(train_pairs)} training enrolments of "
        f"{len(histories)} learners; {len(held_out)} learners with >= 2 hold one out; "
        f"tuned on {len(tune_set)}, reported on {len(report_set)}"
    )
    print(
        f"load: {', '.join(f'{k} {v:.1f}' for k, v in run.timings.items())}; total {total_s:.0f} s"
    )
    print(f"served lists ({mode}) for {len(report_set)} learners: {run.served_s:.1f} s")
    print(f"tuning half: chosen {tuned.weights}, own-subject places {tuned.slots}")
    shipped = run.shipped
    print(
        f"served with ({args.serve}): content {shipped.blend_content}, ALS {shipped.blend_als}, "
        f"popularity {shipped.blend_popular}, own-subject places {shipped.rec_own_slots}, "
        f"popularity for histories {_ranges(shipped.rec_popular_histories)}"
    )
    for ndcg, weights in tuned.top:
        print(f"  {weights}: NDCG@10 {ndcg:.4f}")
    print(f"  own-subject places -> NDCG@10: {tuned.by_slots}")
    print("  by history (learners, client popularity, hybrid, popularity + own places):")
    for key, (count, base, hybrid, served_popular) in tuned.by_bucket.items():
        verdict = "hybrid" if hybrid > served_popular else "popularity served"
        print(f"    {key}: {count}, {base:.4f}, {hybrid:.4f}, {served_popular:.4f} -> {verdict}")

    same = sum(run.served[learner] == run.in_process[learner] for learner in report_set)
    print(f"\nreport half: served == Recommender.recommend for {same}/{len(report_set)} learners")
    report = {learner: run.candidates[learner] for learner in report_set}
    rows = {
        "popularity (the client's, from the interactions it sent)": score_lists(
            popular, report_set, held_out
        ),
        "popularity (service)": evaluate(report, held_out, BlendWeights(0, 0, 1)),
        "content alone": evaluate(report, held_out, BlendWeights(1, 0, 0)),
        "ALS alone": evaluate(report, held_out, BlendWeights(0, 1, 0)),
        "hybrid as scored before (0.35/0.05/0.60, popularity floor 0 outside the top 100)": (
            evaluate(
                {
                    learner: as_before(found, run.shipped.rec_candidates)
                    for learner, found in report.items()
                },
                held_out,
                BlendWeights(0.35, 0.05, 0.6),
            )
        ),
        "hybrid, tuning half's blend, no own-subject places (in-process)": evaluate(
            report, held_out, tuned.weights
        ),
        "hybrid, tuning half's blend and places (in-process, no popularity rule)": evaluate(
            report, held_out, tuned.weights, tuned.slots
        ),
        f"hybrid served ({mode})": score_lists(run.served, report_set, held_out),
    }
    baseline = next(iter(rows))
    print(table(rows, baseline))
    ratio = ratio_draws(rows[f"hybrid served ({mode})"], rows[baseline])
    print(
        f"\nserved / popularity: {np.mean(ratio):.3f}x (resample mean), 95% interval "
        f"{interval(ratio)}; share of {DRAWS} resamples at or above {GOAL}x: "
        f"{(ratio >= GOAL).mean():.2f}"
    )
    print(f"\nNDCG@{K} by training enrolments (report half):")
    print(
        bucket_table(
            {"popularity": popular, "served": run.served},
            report_set,
            held_out,
            histories,
            "popularity",
        )
    )


if __name__ == "__main__":
    main()
