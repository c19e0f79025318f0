"""Accepting a write: record the task durably, then publish its id.

The task row is committed before the message is published and before the client hears 202, so
the write survives a broker outage (the sweeper publishes it later) and a crash right after the
answer. A publish that fails is not an error for the client: the ledger already holds the write.
"""

import logging
from typing import Any

import anyio
from celery import Celery
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import transaction
from shared.messaging import publish_course_task
from shared.settings import Settings
from shared.tasks.repository import TaskRepository
from shared.tasks.schemas import TaskAccepted, TaskStatus, TaskType

log = logging.getLogger(__name__)


class WriteDispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        celery: Celery,
        settings: Settings,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.celery = celery
        self.settings = settings

    async def accept(self, type: TaskType, items: list[dict[str, Any]]) -> TaskAccepted:
        async with transaction(self.sessionmaker) as session:
            task = await TaskRepository(session).create(
                type=type.value, payload={"items": items}, received=len(items)
            )
        try:
            with anyio.fail_after(self.settings.publish_timeout_s * 2):
                await anyio.to_thread.run_sync(publish_course_task, self.celery, task.id)
        except Exception as exc:  # the ledger holds the write; the sweeper will publish it
            log.warning("publish of task %s failed, left to the sweeper: %r", task.id, exc)
            try:
                async with transaction(self.sessionmaker) as session:
                    await TaskRepository(session).mark_unpublished(task.id)
            except Exception:
                log.warning("could not clear the publish stamp of task %s", task.id)
        return TaskAccepted(
            task_id=task.id, status=TaskStatus.queued, status_url=f"/v1/tasks/{task.id}"
        )
