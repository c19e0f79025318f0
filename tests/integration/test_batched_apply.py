"""Small course tasks waiting in the ledger are applied together by the worker that takes one of
them, against the real PostgreSQL, Milvus and model: each keeps its own outcome, their own
messages then find them finished, and one bad task cannot fail the others."""

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import text

from devstack.stack import LocalStack
from shared.db import transaction
from shared.ledger.repository import TaskRepository
from shared.settings import get_settings
from tests.support.stores import Stores, stores
from workers.runtime import WorkerRuntime
from workers.tasks.courses import process_course_task


@pytest.fixture(autouse=True)
def _migrated(stack: LocalStack) -> None:
    """The session stack has migrated this run's database and created its collection."""


def course(course_id: str, title: str) -> dict[str, Any]:
    return {"id": course_id, "title": title, "description": f"{title}: learn it step by step."}


async def queue(s: Stores, *tasks: tuple[str, list[Any]]) -> list[uuid.UUID]:
    """Tasks as the API records them, without their messages: only batching can apply them.

    The session's own worker also takes queued small tasks when it applies one: wait until it
    has none in hand, and record these together, so they are this test's to apply."""
    for _ in range(300):
        async with s.sessionmaker() as session:
            busy = await session.scalar(
                text("SELECT count(*) FROM tasks WHERE status IN ('queued', 'processing')")
            )
        if not busy:
            break
        await asyncio.sleep(0.2)
    async with transaction(s.sessionmaker) as session:
        repo = TaskRepository(session)
        return [
            (await repo.create(type=type, payload={"items": items}, received=len(items))).id
            for type, items in tasks
        ]


async def ledger(s: Stores, task_id: uuid.UUID) -> Any:
    async with s.sessionmaker() as session:
        return await TaskRepository(session).get(task_id)


def worker(s: Stores) -> WorkerRuntime:
    # What process_course_task uses of a worker child's runtime.
    settings = get_settings()
    return cast(
        WorkerRuntime,
        SimpleNamespace(settings=settings, sessionmaker=s.sessionmaker, indexer=s.indexer),
    )


def milvus_versions(s: Stores, ids: list[str]) -> dict[str, int]:
    expression = f"id in {ids!r}".replace("'", '"')
    rows = s.milvus.query(s.collection, filter=expression, output_fields=["version"])
    return {row["id"]: row["version"] for row in rows}


def test_queued_single_course_tasks_are_applied_together_each_with_its_own_outcome() -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [f"batch:{tag}:{n}" for n in range(6)]

    async def body() -> None:
        async with stores(get_settings()) as s:
            first, *others, renamed, missing = await queue(
                s,
                ("course.upsert", [course(ids[0], "Soil science")]),
                *[
                    ("course.upsert", [course(cid, f"Glacier {n}")])
                    for n, cid in enumerate(ids[1:], start=1)
                ],
                ("course.patch", [{"id": ids[1], "changes": {"title": "Glaciers, renamed"}}]),
                ("course.patch", [{"id": f"batch:{tag}:missing", "changes": {"rating": 4.0}}]),
            )

            assert await process_course_task(worker(s), first) == "succeeded"

            tasks = {t: await ledger(s, t) for t in [first, *others, renamed, missing]}
            assert {t: task.status for t, task in tasks.items()} == {
                **{t: "succeeded" for t in [first, *others, renamed]},
                missing: "failed",
            }
            assert tasks[missing].errors[0]["code"] == "course_not_found"
            assert tasks[renamed].applied == 1 and tasks[missing].failed == 1
            # Claimed by one statement: one worker round applied them all.
            assert len({task.started_at for t, task in tasks.items() if t != first}) == 1
            versions = {cid: tasks[t].seq for cid, t in zip(ids, [first, *others], strict=True)}
            versions[ids[1]] = tasks[renamed].seq
            assert milvus_versions(s, ids) == versions

            # Their own messages arrive later and find nothing to do.
            assert await process_course_task(worker(s), others[0]) == "skipped"
            assert (await ledger(s, others[0])).attempts == 1

    asyncio.run(body())


def test_a_task_that_breaks_the_batch_goes_back_to_the_queue_and_the_taken_one_still_applies() -> (
    None
):
    tag = uuid.uuid4().hex[:8]

    async def body() -> None:
        async with stores(get_settings()) as s:
            taken, broken = await queue(
                s,
                ("course.upsert", [course(f"batch:{tag}:ok", "Pottery basics")]),
                # An item that is not an object: a contract the worker cannot read at all (the
                # API never accepts it; an object that does not fit is only an item error).
                ("course.delete", ["no id"]),
            )

            assert await process_course_task(worker(s), taken) == "succeeded"

            assert (await ledger(s, taken)).status == "succeeded"
            left = await ledger(s, broken)
            assert (left.status, left.attempts, left.started_at) == ("queued", 0, None)
            assert milvus_versions(s, [f"batch:{tag}:ok"]) == {
                f"batch:{tag}:ok": (await ledger(s, taken)).seq
            }
            # Its own message fails it with the reason, as before batching.
            with pytest.raises(AttributeError):
                await process_course_task(worker(s), broken)
            async with transaction(s.sessionmaker) as session:  # as the task wrapper would
                await TaskRepository(session).fail(broken, "AttributeError: 'str' has no 'get'")

    asyncio.run(body())
