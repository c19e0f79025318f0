"""Property: a course filter selects the same courses in PostgreSQL (`sql_conditions`), in Milvus
(`milvus_expression`) and in Python (`matches`), on generated courses and filters: null and zero
prices, unknown durations, skills in any case and spacing, language tags, quotes, backslashes
and non-ASCII text.

Needs no stack: its own database (courses table from the models' metadata) and its own Milvus
Lite server, both removed afterwards.
"""

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pymilvus import MilvusClient
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from devstack.stack import LocalStack, free_port
from shared.catalog.filters import CourseFilters, matches, milvus_expression, sql_conditions
from shared.catalog.models import Course
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import CourseIn, Level, content_hash
from shared.db import create_engine, create_sessionmaker, transaction
from shared.milvus import ensure_collection, entity, literal
from shared.prestart import migrate
from shared.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432"
COLLECTION = "filters"
DIM = 2

PROVIDERS = [
    "edX",
    "EDX",
    'O"Reilly',
    "it's",
    "back\\slash",
    '\\" or true or "',
    "École « polytechnique »",
    "日本語",
]
LANGUAGES = ["en", "fr", "pt-BR", "pt", "zh-Hant-TW"]
SKILLS = ["Python", " python ", "Machine  Learning", "SQL", "ß", "Straße", "ΟΔΟΣ", 'a"b', "x\\y"]
# 1.1 and 9999.9 round up as 32-bit floats; 5e-324 is the smallest positive double.
EDGES = [0.0, 5e-324, 0.5, 1.1, 2.3, 9999.9]
# Filter-only values: tags in another case, a bound between two durations, above any.
FILTER_LANGUAGES = [*LANGUAGES, "EN", "pt-br"]
durations = st.sampled_from(EDGES) | st.floats(0, 10_000)
max_durations = st.sampled_from([*EDGES, 1_000_000.0]) | st.floats(0, 1_000_000)

# Printable text the filters accept (no C0 controls, no DEL), anything else Unicode has.
PRINTABLE_TEXT = st.text(
    st.characters(
        exclude_categories=["Cs"], exclude_characters="".join(map(chr, [*range(32), 127]))
    ),
    min_size=1,
    max_size=8,
).filter(lambda text: text.strip() != "")


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


prices = st.sampled_from([0, *EDGES]) | st.floats(0, 1_000_000)
courses = st.fixed_dictionaries(
    {
        "provider": optional(st.sampled_from(PROVIDERS) | PRINTABLE_TEXT),
        "language": optional(st.sampled_from(LANGUAGES)),
        "level": optional(st.sampled_from([level.value for level in Level])),
        "duration_hours": optional(durations),
        "skills": optional(st.lists(st.sampled_from(SKILLS) | PRINTABLE_TEXT, max_size=4)),
        "price": optional(prices),
    }
)
FILTER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "provider": st.sampled_from(PROVIDERS) | PRINTABLE_TEXT,
    "level": st.sampled_from(Level),
    "language": st.sampled_from(FILTER_LANGUAGES),
    "skill": st.sampled_from(SKILLS) | PRINTABLE_TEXT,
    "free": st.booleans(),
    "max_duration": max_durations,
}


# The edge cases, every run: free is no price or 0 (not 5e-324), a skill is contained, not a
# substring, a bound includes a course of exactly that length (1.1 is not a float32), an
# unknown duration fits no bound, tags and providers compare as written.
EDGE_COURSE = dict.fromkeys(["provider", "language", "level", "duration_hours", "skills", "price"])
EDGE_CATALOGUE = [
    EDGE_COURSE,
    {**EDGE_COURSE, "price": 0, "duration_hours": 1.1, "skills": ["Straße", " Python "]},
    {**EDGE_COURSE, "price": 5e-324, "duration_hours": 1.2, "provider": 'O"Reilly'},
    {**EDGE_COURSE, "price": 10.0, "language": "pt-BR", "level": "advanced", "skills": ["ß"]},
]
EDGE_FILTERS = [
    CourseFilters(free=True),
    CourseFilters(free=False),
    CourseFilters(skill="ß"),
    CourseFilters(skill="  PYTHON"),
    CourseFilters(max_duration=1.1),
    CourseFilters(max_duration=0),
    CourseFilters(language="pt-br"),
    CourseFilters(language="pt-BR", level=Level.advanced),
    CourseFilters(provider='O"Reilly'),
]


@st.composite
def filters_for(draw: st.DrawFn, catalogue: list[dict[str, Any]]) -> CourseFilters:
    """One or two filters, their values often taken from the catalogue so that they match
    some of its courses (and only some)."""
    names = draw(st.lists(st.sampled_from(list(FILTER_VALUES)), min_size=1, max_size=2))
    present: dict[str, list[Any]] = {
        "provider": [c["provider"] for c in catalogue if c["provider"]],
        "language": [c["language"] for c in catalogue if c["language"]],
        "skill": [s for c in catalogue for s in c["skills"] or []],
        "max_duration": [c["duration_hours"] for c in catalogue if c["duration_hours"] is not None],
    }
    values = {}
    for name in names:
        known = present.get(name)
        strategy = FILTER_VALUES[name]
        values[name] = draw(st.sampled_from(known) | strategy if known else strategy)
    return CourseFilters.model_validate(values)


@st.composite
def examples(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[CourseFilters]]:
    catalogue = draw(st.lists(courses, min_size=1, max_size=12))
    return catalogue, draw(st.lists(filters_for(catalogue), min_size=1, max_size=6))


@dataclass
class Services:
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    milvus: MilvusClient


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    database = f"coursewise_filters_{uuid.uuid4().hex[:8]}"
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_admin(f'CREATE DATABASE "{database}"'))
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="coursewise-filters-") as tmp:
        stack = LocalStack(
            env={"COURSEWISE_MILVUS_URI": f"http://127.0.0.1:{port}"}, var_dir=Path(tmp) / "var"
        )
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
        engine = create_engine(Settings(), url=url)
        try:
            stack.start_milvus(Path(tmp) / "milvus")
            milvus = MilvusClient(uri=f"http://127.0.0.1:{port}")

            # The real schema: search's generated columns need the migrations' SQL functions.
            migrate(Settings(database_url=url))
            ensure_collection(milvus, COLLECTION, DIM)
            yield Services(loop, engine, create_sessionmaker(engine), milvus)
            milvus.close()
        finally:
            stack.stop()
            loop.run_until_complete(engine.dispose())
            with contextlib.suppress(Exception):
                loop.run_until_complete(
                    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                )
            loop.close()


def _record(index: int, prefix: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A course as the contract normalises it (skills stripped and lower-cased)."""
    course = {"id": f"{prefix}:{index}", "title": "T", "description": "D", **fields}
    if course["price"]:
        course["currency"] = "USD"
    return CourseIn.model_validate({k: v for k, v in course.items() if v is not None}).to_record()


async def _store(services: Services, records: list[dict[str, Any]]) -> list[Course]:
    async with transaction(services.sessionmaker) as session:
        await CourseRepository(session).upsert_many(records, version=1)
    services.milvus.upsert(COLLECTION, [entity(r, [1.0, 0.0], 1, content_hash(r)) for r in records])
    async with services.sessionmaker() as session:
        rows = await CourseRepository(session).get_many([r["id"] for r in records])
    return list(rows.values())


async def _sql_ids(services: Services, ids: list[str], chosen: CourseFilters) -> set[str]:
    async with services.sessionmaker() as session:
        found = await session.scalars(
            select(Course.id).where(Course.id.in_(ids), *sql_conditions(chosen))
        )
        return set(found.all())


def _milvus_ids(services: Services, ids: list[str], expression: str) -> set[str]:
    scope = f"id in [{', '.join(literal(i) for i in ids)}]"
    rows = services.milvus.query(
        COLLECTION,
        filter=f"{scope} and {expression}" if expression else scope,
        output_fields=["id"],
        limit=len(ids) + 1,
    )
    return {row["id"] for row in rows}


async def _forget(services: Services, ids: list[str]) -> None:
    services.milvus.delete(COLLECTION, ids=ids)
    async with transaction(services.sessionmaker) as session:
        await session.execute(delete(Course).where(Course.id.in_(ids)))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=examples(), excluded=st.integers(min_value=0))
@example(example=(EDGE_CATALOGUE, EDGE_FILTERS), excluded=0)
def test_sql_milvus_and_python_select_the_same_courses(
    services: Services, example: tuple[list[dict[str, Any]], list[CourseFilters]], excluded: int
) -> None:
    catalogue, chosen = example
    prefix = uuid.uuid4().hex[:12]
    records = [_record(index, prefix, fields) for index, fields in enumerate(catalogue)]
    rows = services.loop.run_until_complete(_store(services, records))
    ids = sorted(row.id for row in rows)
    exclude_id = ids[excluded % len(ids)]
    try:
        for each in chosen:
            in_python = {row.id for row in rows if matches(each, row)}
            event(
                "selects "
                + ("none" if not in_python else "all" if len(in_python) == len(ids) else "some")
            )
            in_sql = services.loop.run_until_complete(_sql_ids(services, ids, each))
            in_milvus = _milvus_ids(services, ids, milvus_expression(each))
            assert in_sql == in_python, (each, in_sql ^ in_python)
            assert in_milvus == in_python, (each, milvus_expression(each), in_milvus ^ in_python)
            without = _milvus_ids(services, ids, milvus_expression(each, exclude_id=exclude_id))
            assert without == in_python - {exclude_id}
    finally:
        services.loop.run_until_complete(_forget(services, ids))
