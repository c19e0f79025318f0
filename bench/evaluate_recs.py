"""Offline evaluation of the recommenders on MOOCCube, through the code the service runs.

Starts a Milvus Lite server on its own database and collection; ingests the MOOCCube courses
with the worker's write and indexing code, and every enrolment but one held out per learner with
at least two (the last in file order) with the worker's interaction code; trains ALS with the
training worker's code; then scores each held-out learner with `Recommender` (the code behind
`GET /v1/users/{id}/recommendations`). Learners are split in two halves: blend weights are
tuned on one and every figure is reported on the other.

    .venv/bin/python -m bench.evaluate_recs [--sample N] [--keep]
"""

import argparse
import asyncio
import itertools
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

import asyncpg
import numpy as np
from pymilvus import AsyncMilvusClient

from bench import mooccube
from devstack.stack import LocalStack, free_port
from shared.catalog.filters import CourseFilters
from shared.catalog.indexing import CourseIndexer
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import CourseIn
from shared.catalog.search import CourseSearch
from shared.catalog.writes import apply_upserts, chunked
from shared.db import create_engine, create_sessionmaker, transaction
from shared.embedding import get_embedder
from shared.learners.repository import LearnerRepository
from shared.learners.schemas import InteractionIn
from shared.learners.writes import InteractionItem, apply_interactions
from shared.milvus import client_kwargs, connect
from shared.recommendations.service import BlendWeights, Candidates, Recommender, blend
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


GOAL = 1.15  # the issue's: hybrid NDCG@10 at least 1.15x popularity
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


async def ingest(settings: Settings, train_pairs: list[tuple[str, str]]) -> dict[str, float]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    milvus = connect(settings)
    indexer = CourseIndexer(
        sessionmaker, milvus, settings.milvus_collection, get_embedder(settings)
    )
    timings = {}
    try:
        started = time.perf_counter()
        courses = [(i, CourseIn.model_validate(c)) for i, c in enumerate(mooccube.courses())]
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
            found[learner] = await recommender.candidates(session, learner, CourseFilters())

    try:
        await asyncio.gather(*(one(learner) for learner in learners))
    finally:
        await milvus.close()
        await engine.dispose()
    return found


async def served(
    settings: Settings, learners: list[str], weights: BlendWeights
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


def evaluate(
    candidates: dict[str, Candidates], held_out: dict[str, str], weights: BlendWeights
) -> Scores:
    scores = Scores()
    for learner, found in candidates.items():
        scores.add([r.course_id for r in blend(found, weights, K)], held_out[learner])
    return scores


def bucket(history: int) -> str:
    return "1" if history == 1 else "2" if history == 2 else "3-4" if history <= 4 else "5+"


async def _pg(sql: str) -> None:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=int, default=None, help="evaluate N learners only")
    parser.add_argument("--step", type=float, default=0.05, help="blend grid step")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args()
    if not mooccube.available():
        raise SystemExit(f"skipped: {mooccube.data_dir()} is absent")

    enrolments = mooccube.enrolments()
    train_pairs, held_out = split(enrolments)
    tune_set, report_set = halves(held_out, args.sample)
    learners = tune_set + report_set

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
            timings = asyncio.run(ingest(settings, train_pairs))
            started = time.perf_counter()
            candidates = asyncio.run(collect(settings, learners))
            collect_s = time.perf_counter() - started

            tune = {learner: candidates[learner] for learner in tune_set}
            grid = [round(i * args.step, 4) for i in range(round(1 / args.step) + 1)]
            results = []
            for content, als in itertools.product(grid, grid):
                if content + als > 1 + 1e-9:
                    continue
                weights = BlendWeights(content, als, round(1 - content - als, 4))
                results.append((evaluate(tune, held_out, weights).ndcg, weights))
            results.sort(key=lambda r: -r[0])
            best = results[0][1]
            best_no_als = max((r for r in results if r[1].als == 0), key=lambda r: r[0])[1]

            report = {learner: candidates[learner] for learner in report_set}
            rows = {name: evaluate(report, held_out, w) for name, w in SINGLE.items()}
            rows["content + popularity (no ALS)"] = evaluate(report, held_out, best_no_als)
            rows["hybrid (blend)"] = evaluate(report, held_out, best)
            shipped = BlendWeights.from_settings(settings)
            rows[f"hybrid, shipped settings {shipped}"] = evaluate(report, held_out, shipped)
            started = time.perf_counter()
            api_lists = asyncio.run(served(settings, report_set, best))
            served_s = time.perf_counter() - started
            via_api = Scores()
            for learner in report_set:
                via_api.add(api_lists[learner], held_out[learner])
            rows["hybrid (best blend), via Recommender.recommend"] = via_api

            histories: dict[str, int] = defaultdict(int)
            for learner, _ in train_pairs:
                histories[learner] += 1
            buckets: dict[str, dict[str, Scores]] = defaultdict(dict)
            for name, weights in [*SINGLE.items(), ("no ALS", best_no_als), ("hybrid", best)]:
                for key in ("1", "2", "3-4", "5+"):
                    members = {
                        learner: found
                        for learner, found in report.items()
                        if bucket(histories[learner]) == key
                    }
                    buckets[key][name] = evaluate(members, held_out, weights)
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"data: {len(mooccube.courses())} courses, {sum(map(len, enrolments.values()))} enrolments "
        f"of {len(enrolments)} learners; {len(held_out)} learners with >= 2 hold one out; "
        f"tuned on {len(tune_set)}, reported on {len(report_set)}"
    )
    print(
        f"ingest: courses {timings['courses_s']:.1f} s, interactions "
        f"{timings['interactions_s']:.1f} s; ALS ({settings.als_factors} factors, "
        f"{settings.als_iterations} iterations, {timings['als_learners']:.0f} learners, "
        f"{timings['als_interactions']:.0f} cells): fit {timings['als_fit_s']:.2f} s, "
        f"with publishing {timings['als_total_s']:.2f} s"
    )
    print(f"candidates for {len(learners)} learners: {collect_s:.1f} s; served: {served_s:.1f} s")
    print(f"chosen weights: {best} (without ALS: {best_no_als})")
    print("top blends on the tuning half:")
    for ndcg, weights in results[:5]:
        print(f"  {weights}: NDCG@10 {ndcg:.4f}")
    print(
        f"\n| model | Recall@{K} | NDCG@{K} | vs popularity | 95% interval |\n|---|---|---|---|---|"
    )
    popularity = rows["popularity"]
    for name, scores in rows.items():
        print(
            f"| {name} | {scores.recall:.4f} | {scores.ndcg:.4f} | "
            f"{scores.ndcg / popularity.ndcg:.3f}x | {interval(ratio_draws(scores, popularity))} |"
        )
    hybrid = rows["hybrid (blend)"]
    to_popularity = ratio_draws(hybrid, popularity)
    print(
        f"\nhybrid / popularity: {hybrid.ndcg / popularity.ndcg:.3f}x, 95% interval "
        f"{interval(to_popularity)}; share of {DRAWS} resamples at or above the goal "
        f"({GOAL}x): {(to_popularity >= GOAL).mean():.2f}"
    )
    for name in ("content", "ALS"):
        print(
            f"hybrid / {name}: {hybrid.ndcg / rows[name].ndcg:.2f}x, "
            f"95% interval {interval(ratio_draws(hybrid, rows[name]))}"
        )
    print(f"\nNDCG@{K} by training enrolments of the learner (report half):")
    names = list(buckets["1"])
    print("| enrolments | learners | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for key, by_name in buckets.items():
        count = len(next(iter(by_name.values())).hits)
        print(f"| {key} | {count} | " + " | ".join(f"{by_name[n].ndcg:.4f}" for n in names) + " |")


if __name__ == "__main__":
    main()
