"""Task ledger use cases shared by the API and the workers."""

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass

from shared.errors import TaskNotFound
from shared.ledger.models import Task
from shared.ledger.repository import TaskRepository
from shared.ledger.schemas import ItemError, TaskCounts, TaskOut, TaskStatus, TaskType
from shared.settings import Settings

# The apply rate is what finished in this window (from the first finish in it to now).
APPLY_RATE_WINDOW_S = 60.0


@dataclass
class Backlog:
    """One queue's queued tasks and how fast its workers applied tasks lately."""

    queued: int
    apply_per_s: float

    @property
    def drain_s(self) -> float:
        """Expected seconds until the queued tasks are applied: 0 with nothing queued, infinite
        while nothing was applied lately (no worker, or all stuck)."""
        if self.queued == 0:
            return 0.0
        return self.queued / self.apply_per_s if self.apply_per_s > 0 else math.inf


def queue_types(settings: Settings) -> dict[str, list[str]]:
    """Each queue with the task types it carries (the table of kinds)."""
    from shared.ledger.kinds import KINDS

    queues: dict[str, list[str]] = defaultdict(list)
    for task_type, kind in KINDS.items():
        queues[kind.queue(settings)].append(task_type.value)
    return dict(queues)


async def backlogs(repo: TaskRepository, settings: Settings) -> dict[str, Backlog]:
    by_type = await repo.backlog_by_type(APPLY_RATE_WINDOW_S)
    out = {}
    for queue, types in queue_types(settings).items():
        rows = [by_type[t] for t in types if t in by_type]
        finished = sum(r[1] for r in rows)
        span = max((r[2] for r in rows), default=0.0)
        # At least a second: a burst that just finished is not an infinite rate.
        rate = finished / max(span, 1.0) if finished else 0.0
        out[queue] = Backlog(sum(r[0] for r in rows), rate)
    return out


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


async def get_task(
    repo: TaskRepository, task_id: uuid.UUID, owner: str | None, settings: Settings
) -> TaskOut:
    """`owner` None sees every task (admins). Another owner's task is reported missing, not
    forbidden, so ids cannot be probed. A queued task says where it stands in its queue."""
    task = await repo.get(task_id)
    if task is None or (owner is not None and task.owner != owner):
        raise TaskNotFound(str(task_id))
    out = task_out(task)
    if task.status == TaskStatus.queued:
        from shared.ledger.kinds import kind_of

        queue = kind_of(task.type).queue(settings)
        ahead = await repo.queued_ahead(task, queue_types(settings)[queue])
        out.queue_position = ahead + 1
        backlog = (await backlogs(repo, settings))[queue]
        if backlog.apply_per_s > 0:
            out.expected_start_s = round(ahead / backlog.apply_per_s, 1)
    return out
