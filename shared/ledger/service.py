"""Task ledger use cases shared by the API and the workers."""

import asyncio
import math
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.errors import ErrorDetail, InvalidRequest, TaskNotCancellable, TaskNotFound
from shared.ledger.models import Task
from shared.ledger.repository import TaskRepository
from shared.ledger.schemas import (
    TERMINAL,
    CancelFilter,
    CancelResult,
    ItemError,
    TaskCounts,
    TaskOut,
    TaskStatus,
    TaskType,
)
from shared.metrics import observe_cancelled
from shared.settings import Settings

# One filtered cancel touches at most this many tasks (the answer lists them all); repeat it.
CANCEL_MAX_TASKS = 10_000

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


async def cancel_task(repo: TaskRepository, task_id: uuid.UUID, owner: str | None) -> TaskOut:
    """Cancel one queued task; a task in any other state is a conflict naming that state."""
    cancelled = await repo.cancel(task_id, owner)
    if cancelled is None:
        task = await repo.get(task_id)
        if task is None or (owner is not None and task.owner != owner):
            raise TaskNotFound(str(task_id))
        raise TaskNotCancellable(str(task_id), task.status)
    observe_cancelled(cancelled.type)
    return task_out(cancelled)


async def cancel_tasks(
    repo: TaskRepository, matching: CancelFilter, owner: str | None
) -> CancelResult:
    """Cancel the queued tasks a filter matches; matching none is an empty result."""
    if matching.statuses is None and matching.types is None and matching.enqueued_before is None:
        raise InvalidRequest(
            "Name at least one of statuses, types, enqueued_before.",
            [ErrorDetail(["body"], "missing_filter", "an empty filter would cancel everything")],
        )
    before = matching.enqueued_before
    if before is not None and before.tzinfo is None:
        raise InvalidRequest(
            "enqueued_before needs a time zone.",
            [ErrorDetail(["body", "enqueued_before"], "naive_datetime", "add a UTC offset")],
        )
    if matching.statuses is not None and TaskStatus.queued not in matching.statuses:
        return CancelResult(cancelled=0, task_ids=[])
    if matching.types == []:
        return CancelResult(cancelled=0, task_ids=[])
    cancelled = await repo.cancel_matching(
        types=[t.value for t in matching.types or []],
        enqueued_before=before.astimezone(UTC) if before is not None else None,
        owner=owner,
        limit=CANCEL_MAX_TASKS,
    )
    for task in cancelled:
        observe_cancelled(task.type)
    return CancelResult(cancelled=len(cancelled), task_ids=[task.id for task in cancelled])


async def task_changes(
    sessionmaker: async_sessionmaker[AsyncSession],
    task_id: uuid.UUID,
    owner: str | None,
    settings: Settings,
    *,
    poll_s: float = 0.25,
    max_s: float = 3600.0,
) -> AsyncGenerator[TaskOut | None, None]:
    """The task now, then again each time its status or counts change, ending with its final
    state; None at most every 15 s while nothing changes (a keep-alive for the stream). Each
    look is a short session of its own: an open stream holds no connection. Stops after
    `max_s` (a client reconnects). The first look raises TaskNotFound."""
    started = time.monotonic()
    last: tuple[object, ...] | None = None
    quiet_since = started
    while True:
        async with sessionmaker() as session:
            task = await get_task(TaskRepository(session), task_id, owner, settings)
        seen = (task.status, task.counts.applied, task.counts.failed, task.attempts)
        now = time.monotonic()
        if seen != last:
            last, quiet_since = seen, now
            yield task
        elif now - quiet_since >= 15:
            quiet_since = now
            yield None
        if task.status in TERMINAL or now - started >= max_s:
            return
        await asyncio.sleep(poll_s)
