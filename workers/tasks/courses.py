"""Applying course writes: PostgreSQL first (version-guarded), then Milvus, chunk by chunk,
recording progress in the ledger. Safe to run any number of times for the same task."""

import logging
import time
import uuid
from typing import Any

from celery import shared_task

from shared.catalog.repository import CourseRepository
from shared.catalog.writes import OPERATIONS, apply_chunk, chunked
from shared.db import transaction
from shared.messaging import APPLY_COURSE_WRITES
from shared.settings import get_settings
from shared.tasks.repository import TaskRepository
from shared.tasks.schemas import TaskStatus, TaskType
from workers.observability import note_ledger_task
from workers.retry import TransientError, is_transient
from workers.runtime import WorkerRuntime, runtime
from workers.tasks.base import LedgerTask

log = logging.getLogger(__name__)


async def process_course_task(rt: WorkerRuntime, task_id: uuid.UUID) -> str:
    async with transaction(rt.sessionmaker) as session:
        task = await TaskRepository(session).claim(task_id)
    if task is None:
        log.info("task %s is unknown or already finished; nothing to do", task_id)
        return "skipped"
    note_ledger_task(task.type, task.payload.get("request_id"))
    operation = OPERATIONS[TaskType(task.type)]
    items: list[dict[str, Any]] = task.payload["items"]
    applied, errors = 0, []
    limit = rt.settings.max_errors_reported
    chunks = chunked(list(enumerate(items)), rt.settings.apply_chunk_size)
    for number, chunk in enumerate(chunks, start=1):
        async with transaction(rt.sessionmaker) as session:
            outcome = await apply_chunk(CourseRepository(session), operation, chunk, task.seq)
        started = time.perf_counter()
        report = await rt.indexer.sync(outcome.touched)
        applied += outcome.applied
        errors.extend(outcome.errors)
        log.info(
            "task %s: applied %d, failed %d, embedded %d (%.1fs), reused %d, removed %d, "
            "milvus %.2fs, index step %.1fs",
            task_id,
            outcome.applied,
            len(outcome.errors),
            report.embedded,
            report.embed_seconds,
            report.reused,
            report.removed,
            report.milvus_seconds,
            time.perf_counter() - started,
        )
        if number < len(chunks):  # progress; the last chunk's is recorded with the status
            async with transaction(rt.sessionmaker) as session:
                await TaskRepository(session).record_outcome(
                    task_id, applied=applied, errors=errors[:limit]
                )
    status = TaskStatus.failed if errors and not applied else TaskStatus.succeeded
    error = errors[0]["reason"] if status is TaskStatus.failed else None
    async with transaction(rt.sessionmaker) as session:
        await TaskRepository(session).record_outcome(
            task_id, applied=applied, errors=errors[:limit], status=status, error=error
        )
    return status.value


@shared_task(
    name=APPLY_COURSE_WRITES,
    base=LedgerTask,
    bind=True,
    max_retries=get_settings().task_max_retries,
)
def apply_course_writes(self: LedgerTask, task_id: str) -> str:
    try:
        return runtime().run(process_course_task(runtime(), uuid.UUID(task_id)))
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        raise
