"""Periodic jobs run from beat."""

import logging
from datetime import UTC, datetime, timedelta

from celery import current_app, shared_task

from shared.db import transaction
from shared.messaging import REQUEUE_STALE_TASKS, publish_course_task
from shared.tasks.repository import TaskRepository
from workers.runtime import WorkerRuntime, runtime

log = logging.getLogger(__name__)


async def requeue_stale(rt: WorkerRuntime, *, limit: int = 500) -> int:
    """Publish again every task whose message may be lost; consumers make duplicates harmless."""
    async with transaction(rt.sessionmaker) as session:
        repo = TaskRepository(session)
        due = await repo.due_for_publish(
            now=datetime.now(UTC),
            requeue_after=timedelta(seconds=rt.settings.requeue_after_s),
            stuck_after=timedelta(seconds=rt.settings.stuck_processing_after_s),
            limit=limit,
        )
        for task_id in due:
            publish_course_task(current_app, task_id)
            await repo.mark_published(task_id)
    if due:
        log.warning("re-published %d task(s) whose message may have been lost", len(due))
    return len(due)


@shared_task(name=REQUEUE_STALE_TASKS, ignore_result=True)
def requeue_stale_tasks() -> int:
    return runtime().run(requeue_stale(runtime()))
