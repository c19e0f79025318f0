"""Every kind of ledger task, in one table.

A kind (a ledger row's `type`) has a family, which fixes the Celery task that applies it, the
queue that carries that task and the worker module registering it; an item model, which reads
the payload's items back; and an applier, which lives beside its feature. The Celery routes
(shared/messaging.py), the API's publish, the workers' dispatch and the workers' include list
all come from this table. A new kind is one entry here and one applier (plus its `TaskType`
member, and a migration for the ledger's type constraint).

The names of the Celery tasks are on the wire (deployed workers and queued messages use them):
never rename them.
"""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pymilvus import MilvusClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import CourseIn
from shared.catalog.writes import (
    ChunkOutcome,
    CoursePatchItem,
    CourseRef,
    apply_deletes,
    apply_patches,
    apply_upserts,
)
from shared.learners.repository import LearnerRepository
from shared.learners.writes import (
    InteractionItem,
    LearnerOutcome,
    LearnerProfileItem,
    LearnerRef,
    apply_erasures,
    apply_interactions,
    apply_profiles,
)
from shared.ledger.schemas import ItemError, TaskType
from shared.recommendations.training import RetrainItem, TrainingReport, train
from shared.settings import Settings

ItemT = TypeVar("ItemT", bound=BaseModel)

APPLY_COURSE_WRITES = "coursewise.courses.apply_writes"
APPLY_LEARNER_WRITES = "coursewise.learners.apply_writes"
TRAIN_MODEL = "coursewise.training.train_model"


@dataclass(frozen=True)
class CourseKind(Generic[ItemT]):
    """A course write: applied chunk by chunk (each chunk committed, then synced to Milvus); a
    small one is applied together with the other small course writes queued."""

    task: ClassVar[str] = APPLY_COURSE_WRITES
    module: ClassVar[str] = "workers.tasks.courses"
    invalid_code: ClassVar[str] = "invalid_course"

    item: type[ItemT]
    apply: Callable[
        [CourseRepository, list[tuple[int, ItemT]], int], Coroutine[Any, Any, ChunkOutcome]
    ]

    @staticmethod
    def queue(settings: Settings) -> str:
        return settings.write_queue


@dataclass(frozen=True)
class LearnerKind(Generic[ItemT]):
    """A learner write: the whole task in one transaction. Shares the write queue with courses."""

    task: ClassVar[str] = APPLY_LEARNER_WRITES
    module: ClassVar[str] = "workers.tasks.learners"
    invalid_code: ClassVar[str] = "invalid_item"

    item: type[ItemT]
    apply: Callable[
        [LearnerRepository, CourseRepository, str, list[tuple[int, ItemT]], int],
        Coroutine[Any, Any, LearnerOutcome],
    ]

    @staticmethod
    def queue(settings: Settings) -> str:
        return settings.write_queue


@dataclass(frozen=True)
class TrainingKind(Generic[ItemT]):
    """A retrain: its own queue and worker process, so it never delays a write."""

    task: ClassVar[str] = TRAIN_MODEL
    module: ClassVar[str] = "workers.tasks.training"
    invalid_code: ClassVar[str] = "invalid_item"

    item: type[ItemT]
    apply: Callable[
        [async_sessionmaker[AsyncSession], MilvusClient, Settings],
        Coroutine[Any, Any, TrainingReport],
    ]

    @staticmethod
    def queue(settings: Settings) -> str:
        return settings.training_queue


Kind = CourseKind[Any] | LearnerKind[Any] | TrainingKind[Any]

KINDS: dict[TaskType, Kind] = {
    TaskType.course_upsert: CourseKind(CourseIn, apply_upserts),
    TaskType.course_bulk_upsert: CourseKind(CourseIn, apply_upserts),
    TaskType.course_patch: CourseKind(CoursePatchItem, apply_patches),
    TaskType.course_delete: CourseKind(CourseRef, apply_deletes),
    TaskType.learner_upsert: LearnerKind(LearnerProfileItem, apply_profiles),
    TaskType.learner_delete: LearnerKind(LearnerRef, apply_erasures),
    TaskType.interaction_batch: LearnerKind(InteractionItem, apply_interactions),
    TaskType.model_retrain: TrainingKind(RetrainItem, train),
}

COURSE_TYPES = [task_type for task_type, kind in KINDS.items() if isinstance(kind, CourseKind)]


def kind_of(task_type: str) -> Kind:
    return KINDS[TaskType(task_type)]


def worker_modules() -> list[str]:
    """The modules registering the Celery tasks of every kind, each once, in table order."""
    return list(dict.fromkeys(kind.module for kind in KINDS.values()))


def read_items(
    kind: CourseKind[ItemT] | LearnerKind[ItemT] | TrainingKind[ItemT],
    items: list[dict[str, Any]],
) -> tuple[list[tuple[int, ItemT]], list[ItemError]]:
    """A payload's items as the kind's model, each with its position in the request; an item
    that does not fit is an error of that item (the API validated it: only a changed contract
    lands here). Erased items (a deleted learner's, see `LearnerRepository.scrub_task_payloads`)
    are skipped."""
    read: list[tuple[int, ItemT]] = []
    errors: list[ItemError] = []
    for index, raw in enumerate(items):
        if raw.get("erased"):
            continue
        try:
            read.append((index, kind.item.model_validate(raw)))
        except ValidationError as exc:
            found = raw.get("id", raw.get("user_id"))
            item_id = None if found is None else str(found)
            course = item_id if isinstance(kind, CourseKind) else raw.get("course_id")
            course_id = None if course is None else str(course)
            errors.append(
                ItemError(
                    index=index,
                    item_id=item_id,
                    course_id=course_id,
                    code=kind.invalid_code,
                    reason=str(exc),
                )
            )
    return read, errors


async def apply_course_write(
    repo: CourseRepository, task_type: TaskType, items: list[dict[str, Any]], version: int
) -> ChunkOutcome:
    """Read and apply all of a course write's items as one chunk, in the caller's transaction
    (the batched round of small tasks, the benchmarks and the tests)."""
    kind = KINDS[task_type]
    if not isinstance(kind, CourseKind):
        raise ValueError(f"{task_type} is not a course write")
    read, invalid = read_items(kind, items)
    outcome = await kind.apply(repo, read, version)
    outcome.errors[:0] = invalid
    return outcome
