"""Training the collaborative model (implicit ALS) and publishing it as a new version.

The learner factors are thrown away: reads fold a learner in from the item factors at request
time, so a new interaction counts at once and a deleted learner leaves nothing in a model.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel
from pymilvus import MilvusClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.catalog.fields import course_record
from shared.catalog.repository import CourseRepository
from shared.db import transaction
from shared.learners.repository import LearnerRepository
from shared.recommendations import factors
from shared.recommendations.models import ModelVersion
from shared.recommendations.repository import ModelRepository
from shared.recommendations.weights import interaction_weight
from shared.settings import Settings

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

log = logging.getLogger(__name__)


class RetrainItem(BaseModel):
    """The payload item of `model.retrain`: which model to train (one kind so far)."""

    model: Literal["als"] = "als"


class NothingToTrain(ValueError):
    """No interaction with a live course yet."""


@dataclass
class TrainingReport:
    version: int
    learners: int
    items: int
    interactions: int
    train_seconds: float
    total_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def fit_als(settings: Settings, matrix: "csr_matrix") -> tuple[np.ndarray, float]:
    """Item factors of an implicit ALS model fitted on a learners x items weight matrix."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises itself; a multi-threaded BLAS under it only oversubscribes the cores.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=settings.als_factors,
            regularization=settings.als_regularization,
            alpha=settings.als_alpha,
            iterations=settings.als_iterations,
            calculate_training_loss=False,
            num_threads=settings.als_threads,
            random_state=42,
        )
        started = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - started
    return np.asarray(model.item_factors, dtype=np.float64), seconds


async def train(
    sessionmaker: async_sessionmaker[AsyncSession], milvus: MilvusClient, settings: Settings
) -> TrainingReport:
    started = time.perf_counter()
    async with sessionmaker() as session:
        rows = await LearnerRepository(session).all_interactions()
        course_ids = sorted({row[1] for row in rows})
        courses = await CourseRepository(session).get_many(course_ids)
    live = {cid: row for cid, row in courses.items() if row.deleted_at is None}
    # Recency counts back from the newest interaction, as reads do: the data, not the clock.
    now = max((row[4] for row in rows), default=datetime.now(UTC))
    learner_index: dict[str, int] = {}
    item_index = {cid: i for i, cid in enumerate(sorted(live))}
    cells: dict[tuple[int, int], float] = {}
    for learner_id, course_id, kind, value, occurred_at in rows:
        item = item_index.get(course_id)
        if item is None:
            continue
        user = learner_index.setdefault(learner_id, len(learner_index))
        weight = interaction_weight(settings, kind, value, occurred_at, now)
        if weight > 0:
            cells[(user, item)] = cells.get((user, item), 0.0) + weight
    if not cells:
        raise NothingToTrain("no interactions with live courses to train on")
    # Imported here: the API loads this module (for the table of task kinds) but never trains.
    from scipy.sparse import csr_matrix

    users, items = zip(*cells, strict=True)
    matrix = csr_matrix(
        (np.fromiter(cells.values(), dtype=np.float32), (users, items)),
        shape=(len(learner_index), len(item_index)),
    )

    async with transaction(sessionmaker) as session:
        version = await ModelRepository(session).start(
            factors=settings.als_factors,
            params={
                "iterations": settings.als_iterations,
                "regularization": settings.als_regularization,
                "alpha": settings.als_alpha,
            },
        )
    name = factors.collection_name(settings.milvus_collection, version)
    try:
        item_factors, train_seconds = fit_als(settings, matrix)
        records = [course_record(live[cid]) for cid in sorted(live)]
        factors.create(milvus, name, item_factors.shape[1])
        factors.insert(milvus, name, records, item_factors, version)
        gram = item_factors.T @ item_factors
        async with transaction(sessionmaker) as session:
            retired = await ModelRepository(session).activate(
                version,
                collection=name,
                gram=gram.astype(np.float64).tobytes(),
                learners=matrix.shape[0],
                items=matrix.shape[1],
                interactions=int(matrix.nnz),
                train_seconds=train_seconds,
            )
    except Exception as exc:
        async with transaction(sessionmaker) as session:
            await session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version)
                .values(state="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            )
        if milvus.has_collection(name):
            milvus.drop_collection(name)
        raise
    # Versions before the previous one can no longer be served by any read in flight.
    for old in retired:
        if milvus.has_collection(old):
            milvus.drop_collection(old)
    report = TrainingReport(
        version=version,
        learners=matrix.shape[0],
        items=matrix.shape[1],
        interactions=int(matrix.nnz),
        train_seconds=round(train_seconds, 3),
        total_seconds=round(time.perf_counter() - started, 3),
    )
    log.info("trained ALS model version %d: %s", version, report.as_dict())
    return report
