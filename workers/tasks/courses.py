"""Applying course writes: PostgreSQL first (version-guarded), then Milvus, chunk by chunk,
recording progress in the ledger. Safe to run any number of times for the same task."""

import logging
import time
import uuid
from typing import Any

from celery import shared_task

from shared.catalog.repository import CourseRepository
from shared.catalog.writes import ChunkOutcome, chunked
from shared.db import transaction
from shared.ledger.kinds import (
    APPLY_COURSE_WRITES,
    COURSE_TYPES,
    CourseKind,
    apply_course_write,
    kind_of,
    read_items,
)
from shared.ledger.models import Task
from shared.ledger.repository import TaskRepository
from shared.ledger.schemas import ItemError, TaskStatus, TaskType
from shared.metrics import observe_task
from shared.settings import get_settings
from workers.observability import note_ledger_task
from workers.retry import TransientError, is_transient
from workers.runtime import WorkerRuntime, runtime
from workers.tasks.base import SKIPPED, LedgerTask

log = logging.getLogger(__name__)


def _final_status(applied: int, errors: list[ItemError]) -> tuple[TaskStatus, str | None]:
    if errors and not applied:
        return TaskStatus.failed, errors[0].reason
    return TaskStatus.succeeded, None


def _course_kind(task: Task) -> CourseKind[Any]:
    kind = kind_of(task.type)
    if not isinstance(kind, CourseKind):  # a routing mistake: no retry will make it one
        raise ValueError(f"task {task.id} is a {task.type} task, not a course write")
    return kind


async def process_course_task(rt: WorkerRuntime, task_id: uuid.UUID) -> str:
    async with transaction(rt.sessionmaker) as session:
        task = await TaskRepository(session).claim(task_id)
    if task is None:
        log.info("task %s is unknown or already finished; nothing to do", task_id)
        return SKIPPED
    note_ledger_task(task.type, task.payload.get("request_id"))
    settings = rt.settings
    if settings.batch_max_tasks > 1 and task.received <= settings.batch_task_max_items:
        try:
            status = await _apply_with_queued(rt, task)
        except Exception:
            # Perhaps one of the others is at fault: they go back to the queue untouched (their
            # own messages bring them back) and this task is applied on its own.
            log.warning(
                "applying task %s with queued tasks failed; alone now", task_id, exc_info=True
            )
            status = None
        if status is not None:
            return status.value
    return (await _apply_alone(rt, task)).value


async def _apply_with_queued(rt: WorkerRuntime, task: Task) -> TaskStatus | None:
    """Apply a small task together with other queued small course tasks: under a steady stream
    of single-course writes, one worker round (one transaction, one embedding batch, one Milvus
    write) then serves many writes instead of one. None when nothing else was queued."""
    started = time.perf_counter()
    settings = rt.settings
    async with transaction(rt.sessionmaker) as ledger_session:
        ledger = TaskRepository(ledger_session)
        others = await ledger.claim_queued(
            types=COURSE_TYPES,
            max_received=settings.batch_task_max_items,
            limit=settings.batch_max_tasks - 1,
            exclude=task.id,
        )
        if not others:
            return None
        tasks = sorted([task, *others], key=lambda t: t.seq)
        outcomes: dict[uuid.UUID, ChunkOutcome] = {}
        async with transaction(rt.sessionmaker) as session:
            repo = CourseRepository(session)
            # Lock every course first, in one order, as a single task does.
            ids = {item.get("id") for t in tasks for item in t.payload["items"]}
            await repo.get_many(sorted(i for i in ids if isinstance(i, str)), lock=True)
            for t in tasks:  # oldest first; the versions settle any order anyway
                items = t.payload["items"]
                outcomes[t.id] = await apply_course_write(repo, TaskType(t.type), items, t.seq)
        report = await rt.indexer.sync([i for o in outcomes.values() for i in o.touched])
        limit = settings.max_errors_reported
        statuses = {}
        for t in tasks:
            outcome = outcomes[t.id]
            statuses[t.id], error = _final_status(outcome.applied, outcome.errors)
            await ledger.record_outcome(
                t.id,
                applied=outcome.applied,
                errors=outcome.errors[:limit],
                status=statuses[t.id],
                error=error,
            )
    seconds = time.perf_counter() - started
    for t in others:
        observe_task(t.type, statuses[t.id].value, seconds)
    log.info(
        "task %s applied with %d queued task(s): embedded %d (%.2fs), milvus %.2fs, %.2fs in all",
        task.id,
        len(others),
        report.embedded,
        report.embed_seconds,
        report.milvus_seconds,
        seconds,
    )
    return statuses[task.id]


async def _apply_alone(rt: WorkerRuntime, task: Task) -> TaskStatus:
    task_id = task.id
    kind = _course_kind(task)
    items, errors = read_items(kind, task.payload["items"])
    applied = 0
    limit = rt.settings.max_errors_reported
    chunks = chunked(items, rt.settings.apply_chunk_size)
    for number, chunk in enumerate(chunks, start=1):
        async with transaction(rt.sessionmaker) as session:
            outcome = await kind.apply(CourseRepository(session), chunk, task.seq)
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
    status, error = _final_status(applied, errors)
    async with transaction(rt.sessionmaker) as session:
        await TaskRepository(session).record_outcome(
            task_id, applied=applied, errors=errors[:limit], status=status, error=error
        )
    return status


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
