"""Property: however accepted upserts and deletes are delivered to the worker (reordered,
duplicated, interleaved), PostgreSQL ends in the state of applying each once, in acceptance order.

Patches are left out: they are relative to the current row, so reordering two of them is a known,
documented limitation.
"""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devstack.stack import LocalStack
from shared.catalog.repository import CourseRepository
from shared.db import create_engine, create_sessionmaker, transaction
from shared.ledger.kinds import apply_course_write
from shared.ledger.schemas import TaskType
from shared.settings import get_settings

BASE = 10**13  # versions far above any the live API (or other tests) hand out in this database


@dataclass(frozen=True)
class Write:
    slot: int  # index into the example's id pool
    title: str | None  # None: a delete

    def request(self, course_id: str) -> tuple[TaskType, dict[str, Any]]:
        if self.title is None:
            return TaskType.course_delete, {"id": course_id}
        return TaskType.course_upsert, {
            "id": course_id,
            "title": self.title,
            "description": "About order.",
        }


@dataclass(frozen=True)
class Scenario:
    pool: int
    writes: list[Write]  # in acceptance order: write i was accepted with version BASE + i
    deliveries: list[int]  # indexes into writes; each at least once, any order


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    pool = draw(st.integers(min_value=2, max_value=3))
    write = st.builds(
        Write,
        slot=st.integers(min_value=0, max_value=pool - 1),
        title=st.none() | st.text(alphabet="ab", min_size=1, max_size=2),
    )
    writes = draw(st.lists(write, min_size=1, max_size=12))
    indexes = range(len(writes))
    duplicates = draw(st.lists(st.sampled_from(indexes), max_size=2 * len(writes)))
    deliveries = draw(st.permutations([*indexes, *duplicates]))
    return Scenario(pool, writes, list(deliveries))


# Model row: (title, version, deleted); title is None for a tombstone.
Model = dict[str, tuple[str | None, int, bool]]


def reference(writes: list[Write], ids: list[str]) -> Model:
    """Each accepted write applied once, in acceptance order. A delete of an id that never
    existed still leaves a tombstone at its version."""
    model: Model = {}
    for index, write in enumerate(writes):
        model[ids[write.slot]] = (write.title, BASE + index, write.title is None)
    return model


async def forget(engine: Any, prefix: str) -> None:
    """These rows never reach Milvus (no indexer here): remove them, so that the shared
    database stays consistent for the tests that check PostgreSQL against Milvus."""
    async with engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM courses WHERE id LIKE :prefix"), {"prefix": f"{prefix}%"}
        )


async def observed(sessionmaker: async_sessionmaker[AsyncSession], ids: list[str]) -> Model:
    async with sessionmaker() as session:
        rows = await CourseRepository(session).get_many(ids)
    return {
        course_id: (
            None if row.deleted_at is not None else row.title,
            row.version,
            row.deleted_at is not None,
        )
        for course_id, row in rows.items()
    }


async def apply_one(
    sessionmaker: async_sessionmaker[AsyncSession], write: Write, course_id: str, version: int
) -> None:
    operation, item = write.request(course_id)
    async with transaction(sessionmaker) as session:
        outcome = await apply_course_write(CourseRepository(session), operation, [item], version)
    assert outcome.errors == []


@pytest.fixture(autouse=True)
def _migrated(stack: LocalStack) -> None:
    """The session stack has migrated this run's database."""


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenarios())
def test_any_delivery_schedule_ends_in_the_acceptance_order_state(scenario: Scenario) -> None:
    prefix = f"prop:{uuid.uuid4().hex}"
    ids = [f"{prefix}:{slot}" for slot in range(scenario.pool)]

    async def main() -> Model:
        engine = create_engine(get_settings())
        try:
            sessionmaker = create_sessionmaker(engine)
            for index in scenario.deliveries:
                write = scenario.writes[index]
                await apply_one(sessionmaker, write, ids[write.slot], BASE + index)
            return await observed(sessionmaker, ids)
        finally:
            await forget(engine, prefix)
            await engine.dispose()

    assert asyncio.run(main()) == reference(scenario.writes, ids)


@pytest.mark.parametrize("existing", [False, True], ids=["new-row", "existing-row"])
@pytest.mark.parametrize("lower", ["upsert", "delete"], ids=lambda op: f"lower-{op}")
@pytest.mark.parametrize("higher", ["upsert", "delete"], ids=lambda op: f"higher-{op}")
@pytest.mark.parametrize("higher_first", [True, False], ids=["higher-locks-first", "lower-first"])
def test_concurrent_deliveries_the_higher_version_wins(
    existing: bool, lower: str, higher: str, higher_first: bool
) -> None:
    course_id = f"prop:{uuid.uuid4().hex}:race"
    low = Write(0, "low" if lower == "upsert" else None)
    high = Write(0, "high" if higher == "upsert" else None)
    expected = {course_id: (high.title, BASE + 2, high.title is None)}

    async def main() -> tuple[Model, Model]:
        engine = create_engine(get_settings())
        try:
            sessionmaker = create_sessionmaker(engine)
            if existing:
                await apply_one(sessionmaker, Write(0, "seed"), course_id, BASE)
            holding, release = asyncio.Event(), asyncio.Event()

            async def first(write: Write, version: int) -> None:
                operation, item = write.request(course_id)
                async with transaction(sessionmaker) as session:
                    await apply_course_write(CourseRepository(session), operation, [item], version)
                    holding.set()
                    await release.wait()  # keep the row (or index entry) locked a while

            async def second(write: Write, version: int) -> None:
                await holding.wait()
                waiting = asyncio.create_task(apply_one(sessionmaker, write, course_id, version))
                done, _ = await asyncio.wait({waiting}, timeout=0.3)
                assert not done, "the second writer did not wait for the first one's lock"
                release.set()
                await waiting

            (a, va), (b, vb) = ((high, BASE + 2), (low, BASE + 1))
            if not higher_first:
                (a, va), (b, vb) = (b, vb), (a, va)
            await asyncio.gather(first(a, va), second(b, vb))
            forced = await observed(sessionmaker, [course_id])

            # And again with no forced ordering: both orders of a plain gather, redelivered.
            await asyncio.gather(
                apply_one(sessionmaker, high, course_id, BASE + 2),
                apply_one(sessionmaker, low, course_id, BASE + 1),
            )
            await asyncio.gather(
                apply_one(sessionmaker, low, course_id, BASE + 1),
                apply_one(sessionmaker, high, course_id, BASE + 2),
            )
            return forced, await observed(sessionmaker, [course_id])
        finally:
            await forget(engine, course_id)
            await engine.dispose()

    forced, racing = asyncio.run(main())
    assert forced == expected
    assert racing == expected
