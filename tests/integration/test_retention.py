"""Nothing grows without end: the backlog is capped and old records are pruned."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from api.write_path import WriteDispatcher
from devstack.stack import LocalStack
from shared.access.repository import RateCounterRepository
from shared.access.service import RATE_WINDOW_S
from shared.db import create_engine, create_sessionmaker, transaction
from shared.errors import BacklogFull
from shared.ledger.idempotency import IdempotencyKey, IdempotencyRepository
from shared.ledger.models import Task
from shared.ledger.repository import LedgerInserts, TaskRepository
from shared.ledger.schemas import TaskType
from shared.settings import Settings
from workers.sweeper import prune


def test_full_backlog_refuses_writes_with_503(stack: LocalStack) -> None:
    async def scenario() -> BacklogFull:
        settings = Settings(max_pending_tasks=1)
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        try:
            async with transaction(sessionmaker) as session:
                waiting = await TaskRepository(session).create(
                    type="course.upsert", payload={"items": []}, received=0, owner="someone"
                )
            # Refused before anything is recorded or published, so no broker is needed.
            dispatcher = WriteDispatcher(
                sessionmaker,
                settings,
                LedgerInserts(engine),
                publisher=None,  # type: ignore[arg-type]
            )
            before = await _count(sessionmaker)
            with pytest.raises(BacklogFull) as refused:
                await dispatcher.accept(TaskType.course_upsert, [{"id": "x:1"}], owner="other")
            assert await _count(sessionmaker) == before
            async with transaction(sessionmaker) as session:
                await session.execute(
                    update(Task).where(Task.id == waiting.id).values(status="succeeded")
                )
            return refused.value
        finally:
            await engine.dispose()

    error = asyncio.run(scenario())
    assert error.status_code == 503
    assert error.headers() == {"Retry-After": "30"}


async def _count(sessionmaker: object) -> int:
    async with sessionmaker() as session:  # type: ignore[operator]
        return int(await session.scalar(select(func.count()).select_from(Task)))


def test_prune_removes_only_what_retention_allows(stack: LocalStack) -> None:
    settings = Settings(task_retention_days=30)
    long_ago = datetime.now(UTC) - timedelta(days=40)

    async def scenario() -> dict[str, object]:
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        try:
            async with transaction(sessionmaker) as session:
                repo = TaskRepository(session)
                old_done = await repo.create(type="course.upsert", payload={}, received=0)
                recent_done = await repo.create(type="course.upsert", payload={}, received=0)
                old_pending = await repo.create(type="course.upsert", payload={}, received=0)
                await IdempotencyRepository(session).claim(
                    "owner:prune", f"k-{uuid.uuid4()}", "h", old_done.id, 86400
                )
                await session.execute(
                    update(Task)
                    .where(Task.id == old_done.id)
                    .values(status="succeeded", finished_at=long_ago)
                )
                await session.execute(
                    update(Task)
                    .where(Task.id == recent_done.id)
                    .values(status="failed", finished_at=func.now())
                )
                await session.execute(
                    update(Task).where(Task.id == old_pending.id).values(enqueued_at=long_ago)
                )
                counters = RateCounterRepository(session)
                now = int(datetime.now(UTC).timestamp())
                await counters.hit("test:prune", now - 10 * RATE_WINDOW_S, RATE_WINDOW_S)
            async with transaction(sessionmaker) as session:
                pruned = await prune(settings, session)
            async with sessionmaker() as session:
                left = {
                    name: await session.get(Task, task.id) is not None
                    for name, task in (
                        ("old_done", old_done),
                        ("recent_done", recent_done),
                        ("old_pending", old_pending),
                    )
                }
                keys = await session.scalar(
                    select(func.count())
                    .select_from(IdempotencyKey)
                    .where(IdempotencyKey.task_id == old_done.id)
                )
            async with transaction(sessionmaker) as session:
                await session.execute(
                    update(Task).where(Task.id == old_pending.id).values(status="failed")
                )
            return {"pruned": pruned, "left": left, "keys": keys}
        finally:
            await engine.dispose()

    result = asyncio.run(scenario())
    assert result["left"] == {"old_done": False, "recent_done": True, "old_pending": True}
    # Who pruned is a race with the stack's own sweeper; what is left is not.
    assert result["keys"] == 0


def test_republishing_backs_off_so_a_long_backlog_is_not_given_up(stack: LocalStack) -> None:
    """A queued task's message may just be waiting behind a backlog: each re-publish waits
    twice as long as the one before, instead of burning through the publishes at a fixed pace."""
    requeue_after = timedelta(seconds=100)

    async def scenario() -> dict[str, bool]:
        engine = create_engine(Settings())
        sessionmaker = create_sessionmaker(engine)
        try:
            # One transaction, rolled back: the live sweeper never sees these rows.
            async with sessionmaker() as session:
                repo = TaskRepository(session)
                now = datetime.now(UTC)
                cases = {
                    # (publishes so far, seconds since the last one): due?
                    "first wait over": (1, 150),
                    "second wait not over": (2, 150),
                    "second wait over": (2, 250),
                    "fifth wait not over": (5, 1500),
                    "fifth wait over": (5, 1700),
                }
                ids = {}
                for name, (publishes, ago) in cases.items():
                    task = await repo.create(type="course.upsert", payload={}, received=0)
                    await session.execute(
                        update(Task)
                        .where(Task.id == task.id)
                        .values(
                            publish_count=publishes,
                            last_published_at=now - timedelta(seconds=ago),
                        )
                    )
                    ids[task.id] = name
                due, _ = await repo.claim_due(
                    now=now,
                    requeue_after=requeue_after,
                    stuck_after=timedelta(hours=1),
                    max_publishes=100,
                    limit=10_000,
                )
                due_names = {ids[row[0]] for row in due if row[0] in ids}
                await session.rollback()
                return {name: name in due_names for name in cases}
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == {
        "first wait over": True,
        "second wait not over": False,
        "second wait over": True,
        "fifth wait not over": False,  # 100 s * 2**4 = 1,600 s
        "fifth wait over": True,
    }
