"""The worker's apply logic against the real PostgreSQL, Milvus and model, in-process: versions
only move forward, whatever order or however often writes are applied."""

from typing import Any

import pytest
from pymilvus import MilvusClient

from devstack.stack import LocalStack
from shared.catalog.repository import CourseRepository
from shared.db import transaction
from shared.ledger.kinds import apply_course_write
from shared.ledger.schemas import ItemError, TaskType
from tests.support.stores import run


async def apply(
    ctx: Any, operation: TaskType, items: list[dict[str, Any]], version: int
) -> list[ItemError]:
    sessionmaker, indexer = ctx
    async with transaction(sessionmaker) as session:
        outcome = await apply_course_write(CourseRepository(session), operation, items, version)
    await indexer.sync(outcome.touched)
    return outcome.errors


async def state(
    ctx: Any, milvus: MilvusClient, collection: str, course_id: str
) -> tuple[tuple[str, int, bool, str] | None, list[int]]:
    sessionmaker, _ = ctx
    async with sessionmaker() as session:
        row = (await CourseRepository(session).get_many([course_id])).get(course_id)
    found = milvus.query(collection, filter=f'id == "{course_id}"', output_fields=["version"])
    pg = (
        None
        if row is None
        else (row.title, row.version, row.deleted_at is not None, row.index_state)
    )
    return pg, [hit["version"] for hit in found]


def doc(course_id: str, title: str) -> dict[str, Any]:
    return {"id": course_id, "title": title, "description": f"{title}: a course about ordering."}


@pytest.fixture(autouse=True)
def _migrated(stack: LocalStack) -> None:
    """The session stack has migrated this run's database and created its collection."""


BASE = 10**12  # versions far above any the live API hands out in this run


def test_older_write_never_overwrites_newer() -> None:
    async def body(ctx: Any, milvus: MilvusClient, collection: str) -> None:
        cid = "order:newer-wins"
        await apply(ctx, TaskType.course_upsert, [doc(cid, "Version two")], BASE + 2)
        await apply(ctx, TaskType.course_upsert, [doc(cid, "Version one")], BASE + 1)
        assert await state(ctx, milvus, collection, cid) == (
            ("Version two", BASE + 2, False, "indexed"),
            [BASE + 2],
        )

    run(body)


def test_delete_is_not_undone_by_a_late_older_create() -> None:
    async def body(ctx: Any, milvus: MilvusClient, collection: str) -> None:
        cid = "order:tombstone"
        await apply(ctx, TaskType.course_upsert, [doc(cid, "Alive")], BASE + 10)
        await apply(ctx, TaskType.course_delete, [{"id": cid}], BASE + 12)
        await apply(ctx, TaskType.course_upsert, [doc(cid, "Late create")], BASE + 11)
        pg, in_milvus = await state(ctx, milvus, collection, cid)
        assert pg is not None and pg[1:3] == (BASE + 12, True)
        assert in_milvus == []
        await apply(ctx, TaskType.course_upsert, [doc(cid, "Reborn")], BASE + 13)
        assert await state(ctx, milvus, collection, cid) == (
            ("Reborn", BASE + 13, False, "indexed"),
            [BASE + 13],
        )

    run(body)


def test_applying_twice_changes_nothing() -> None:
    async def body(ctx: Any, milvus: MilvusClient, collection: str) -> None:
        cid = "order:twice"
        await apply(ctx, TaskType.course_upsert, [doc(cid, "Once")], BASE + 20)
        first = await state(ctx, milvus, collection, cid)
        await apply(ctx, TaskType.course_upsert, [doc(cid, "Once")], BASE + 20)
        await apply(
            ctx, TaskType.course_patch, [{"id": cid, "changes": {"title": "Patched"}}], BASE + 21
        )
        await apply(
            ctx, TaskType.course_patch, [{"id": cid, "changes": {"title": "Patched"}}], BASE + 21
        )
        assert first == (("Once", BASE + 20, False, "indexed"), [BASE + 20])
        assert await state(ctx, milvus, collection, cid) == (
            ("Patched", BASE + 21, False, "indexed"),
            [BASE + 21],
        )

    run(body)


def test_unchanged_text_reuses_the_vector() -> None:
    async def body(ctx: Any, milvus: MilvusClient, collection: str) -> None:
        sessionmaker, indexer = ctx
        cid = "order:reuse"
        await apply(ctx, TaskType.course_upsert, [doc(cid, "Same text")], BASE + 30)
        async with transaction(sessionmaker) as session:
            outcome = await apply_course_write(
                CourseRepository(session),
                TaskType.course_upsert,
                [{**doc(cid, "Same text"), "price": 5, "currency": "USD"}],
                BASE + 31,
            )
        report = await indexer.sync(outcome.touched)
        assert (report.embedded, report.reused, report.upserted) == (0, 1, 1)
        hit = milvus.query(collection, filter=f'id == "{cid}"', output_fields=["price", "version"])
        assert (hit[0]["price"], hit[0]["version"]) == (5.0, BASE + 31)

    run(body)
