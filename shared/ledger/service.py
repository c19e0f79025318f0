"""Task ledger use cases shared by the API and the workers."""

import uuid

from shared.errors import TaskNotFound
from shared.ledger.models import Task
from shared.ledger.repository import TaskRepository
from shared.ledger.schemas import ItemError, TaskCounts, TaskOut, TaskStatus, TaskType


def task_out(task: Task) -> TaskOut:
    duration = None
    if task.started_at is not None and task.finished_at is not None:
        duration = int((task.finished_at - task.started_at).total_seconds() * 1000)
    return TaskOut(
        task_id=task.id,
        seq=task.seq,
        type=TaskType(task.type),
        status=TaskStatus(task.status),
        counts=TaskCounts(received=task.received, applied=task.applied, failed=task.failed),
        errors=[ItemError.model_validate(error) for error in task.errors],
        error=task.error,
        attempts=task.attempts,
        enqueued_at=task.enqueued_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        duration_ms=duration,
    )


async def get_task(repo: TaskRepository, task_id: uuid.UUID, owner: str | None) -> TaskOut:
    """`owner` None sees every task (admins). Another owner's task is reported missing, not
    forbidden, so ids cannot be probed."""
    task = await repo.get(task_id)
    if task is None or (owner is not None and task.owner != owner):
        raise TaskNotFound(str(task_id))
    return task_out(task)
