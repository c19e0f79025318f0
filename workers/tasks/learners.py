"""Applying learner writes (profiles, erasures, interaction batches) from the write queue."""

import logging
import uuid

from celery import shared_task

from shared.catalog.repository import CourseRepository
from shared.db import transaction
from shared.learners.repository import LearnerRepository
from shared.ledger.kinds import APPLY_LEARNER_WRITES, LearnerKind, kind_of, read_items
from shared.ledger.repository import TaskRepository
from shared.ledger.schemas import TaskStatus
from shared.settings import get_settings
from workers.retry import TransientError, is_transient
from workers.runtime import WorkerRuntime, runtime
from workers.tasks.base import SKIPPED, LedgerTask

log = logging.getLogger(__name__)


async def process_learner_task(rt: WorkerRuntime, task_id: uuid.UUID) -> str:
    async with transaction(rt.sessionmaker) as session:
        task = await TaskRepository(session).claim(task_id)
    if task is None:
        log.info("task %s is unknown or already finished; nothing to do", task_id)
        return SKIPPED
    kind = kind_of(task.type)
    if not isinstance(kind, LearnerKind):  # a routing mistake: no retry will make it one
        raise ValueError(f"task {task_id} is a {task.type} task, not a learner write")
    items, invalid = read_items(kind, task.payload["items"])
    # One transaction for the whole task (at most a thousand rows): all of it or nothing.
    async with transaction(rt.sessionmaker) as session:
        outcome = await kind.apply(
            LearnerRepository(session), CourseRepository(session), str(task_id), items, task.seq
        )
        errors = [*invalid, *outcome.errors][: rt.settings.max_errors_reported]
        status = TaskStatus.failed if errors and not outcome.applied else TaskStatus.succeeded
        await TaskRepository(session).record_outcome(
            task_id,
            applied=outcome.applied,
            errors=errors,
            status=status,
            error=errors[0].reason if status is TaskStatus.failed else None,
        )
    log.info(
        "task %s (%s): applied %d, failed %d", task_id, task.type, outcome.applied, len(errors)
    )
    return status.value


@shared_task(
    name=APPLY_LEARNER_WRITES,
    base=LedgerTask,
    bind=True,
    max_retries=get_settings().task_max_retries,
)
def apply_learner_writes(self: LedgerTask, task_id: str) -> str:
    try:
        return runtime().run(process_learner_task(runtime(), uuid.UUID(task_id)))
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        raise
