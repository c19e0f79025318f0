"""All SQL for the task ledger."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from shared.tasks.models import Task
from shared.tasks.schemas import TaskStatus


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, *, type: str, payload: dict[str, Any], received: int) -> Task:
        # Stamped as published now: the caller publishes right after commit, and clears the stamp
        # if that fails, so the sweeper only re-publishes what really may be lost.
        task = Task(
            id=uuid.uuid4(),
            type=type,
            payload=payload,
            received=received,
            last_published_at=func.now(),
            publish_count=1,
        )
        self.session.add(task)
        await self.session.flush()
        await self.session.refresh(task)
        return task

    async def get(self, task_id: uuid.UUID, *, with_payload: bool = False) -> Task | None:
        options = [undefer(Task.payload)] if with_payload else []
        return await self.session.get(Task, task_id, options=options)

    async def page(
        self,
        *,
        statuses: Sequence[str] = (),
        types: Sequence[str] = (),
        before_seq: int | None,
        limit: int,
    ) -> list[Task]:
        query = select(Task).order_by(Task.seq.desc()).limit(limit)
        if statuses:
            query = query.where(Task.status.in_(statuses))
        if types:
            query = query.where(Task.type.in_(types))
        if before_seq is not None:
            query = query.where(Task.seq < before_seq)
        return list((await self.session.scalars(query)).all())

    async def mark_published(self, task_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(last_published_at=func.now(), publish_count=Task.publish_count + 1)
        )

    async def mark_unpublished(self, task_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Task).where(Task.id == task_id).values(last_published_at=None)
        )

    async def claim(self, task_id: uuid.UUID) -> Task | None:
        """Mark a task processing, unless it is unknown or already finished (a redelivery).
        The returned task has its payload loaded."""
        result = await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status.in_([TaskStatus.queued, TaskStatus.processing]))
            .values(
                status=TaskStatus.processing,
                started_at=func.coalesce(Task.started_at, func.now()),
                attempts=Task.attempts + 1,
            )
            .returning(Task)
            .options(undefer(Task.payload))
        )
        return result.scalar_one_or_none()

    async def record_outcome(
        self,
        task_id: uuid.UUID,
        *,
        applied: int,
        errors: list[dict[str, Any]],
        status: TaskStatus | None = None,
        error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"applied": applied, "failed": len(errors), "errors": errors}
        if status is not None:
            values.update(status=status, error=error, finished_at=func.now())
        await self.session.execute(update(Task).where(Task.id == task_id).values(**values))

    async def fail(self, task_id: uuid.UUID, error: str) -> None:
        await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status.in_([TaskStatus.queued, TaskStatus.processing]))
            .values(status=TaskStatus.failed, error=error, finished_at=func.now())
        )

    async def requeue_failed(self, task_id: uuid.UUID) -> bool:
        """Put a failed task back in the queue, with its original version (a newer write that
        landed meanwhile still wins). False if the task is not failed."""
        result = await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == TaskStatus.failed)
            .values(
                status=TaskStatus.queued,
                applied=0,
                failed=0,
                errors=[],
                error=None,
                started_at=None,
                finished_at=None,
                last_published_at=func.now(),
                publish_count=Task.publish_count + 1,
            )
            .returning(Task.id)
        )
        return result.scalar_one_or_none() is not None

    async def due_for_publish(
        self, *, now: datetime, requeue_after: timedelta, stuck_after: timedelta, limit: int
    ) -> list[tuple[uuid.UUID, int, str]]:
        """(id, publishes so far, type) of tasks whose message may be gone: queued and unpublished
        (or published long ago), or processing for far longer than any task takes (the worker
        died holding it)."""
        queued_stale = (Task.status == TaskStatus.queued) & or_(
            Task.last_published_at.is_(None), Task.last_published_at < now - requeue_after
        )
        processing_stuck = (Task.status == TaskStatus.processing) & (
            func.coalesce(Task.last_published_at, Task.started_at) < now - stuck_after
        )
        query = (
            select(Task.id, Task.publish_count, Task.type)
            .where(or_(queued_stale, processing_stuck))
            .order_by(Task.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [(row[0], row[1], row[2]) for row in (await self.session.execute(query)).all()]
