"""Keyword candidates on a database of their own, written by the real write code and analysed as
autovacuum would: words most courses have select courses only together, and the catalogue
survives a dump and restore (pg_dump restores with an empty search path)."""

import asyncio
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from shared.catalog.filters import CourseFilters
from shared.catalog.keyword import KeywordSearch
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import CourseIn
from shared.catalog.writes import apply_upserts
from shared.db import create_engine, create_sessionmaker, transaction
from shared.settings import Settings
from tests.support.inprocess import database_settings, migrated_database
from tests.support.stack import PG_ADMIN_DSN, RUN_ID, pg

TOPICS = ["gardening", "pottery", "astronomy", "sailing", "baking", "chess", "welding", "opera"]


def catalogue() -> list[dict[str, Any]]:
    """Every course an "online course" (the common words); each one's topic word is rare."""
    courses = []
    for n in range(64):
        topic = TOPICS[n % len(TOPICS)]
        courses.append(
            {
                "id": f"kw-{n:02d}",
                "title": f"{topic.title()} workshop {n}",
                "description": f"An online course about {topic}, lesson plan number {n}.",
                "skills": [topic],
            }
        )
    courses.append(
        {
            "id": "kw-rare",
            "title": "Introduction to kubernetes",
            "description": "An online course about containers and kubernetes clusters.",
            "skills": ["kubernetes"],
        }
    )
    return courses


@pytest.fixture(scope="module")
def keyword_db() -> Iterator[Settings]:
    with migrated_database(database_settings(f"{RUN_ID}kw")) as settings:
        asyncio.run(_load(settings))
        yield settings


async def _load(settings: Settings) -> None:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    items = [(i, CourseIn.model_validate(c)) for i, c in enumerate(catalogue())]
    async with transaction(sessionmaker) as session:
        await apply_upserts(CourseRepository(session), items, 1)
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("ANALYZE courses"))
    await engine.dispose()


async def _search(settings: Settings, query: str) -> tuple[list[bool], list[str]]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            keyword = KeywordSearch(session)
            prepared = await keyword.prepare(query, "en")
            hits = await keyword.candidates(prepared, CourseFilters(), limit=200)
            return prepared.common, [hit.id for hit in hits]
    finally:
        await engine.dispose()


def test_a_rare_word_beside_common_ones_finds_its_course_first(keyword_db: Settings) -> None:
    common, ids = asyncio.run(_search(keyword_db, "online course kubernetes"))
    assert common == [True, True, False]
    assert ids[0] == "kw-rare"
    # The common words still match, together: every course has both.
    assert len(ids) == len(catalogue())


def test_common_words_alone_still_find_courses(keyword_db: Settings) -> None:
    common, ids = asyncio.run(_search(keyword_db, "online course"))
    assert all(common)
    assert set(ids) == {c["id"] for c in catalogue()}


def test_a_common_word_on_its_own_finds_exactly_its_courses(keyword_db: Settings) -> None:
    _, ids = asyncio.run(_search(keyword_db, "pottery"))
    expected = {c["id"] for c in catalogue() if "pottery" in c["skills"]}
    assert set(ids) == expected


def test_the_catalogue_survives_a_dump_and_restore(keyword_db: Settings) -> None:
    source = keyword_db.database_url.rsplit("/", 1)[1]
    target = f"coursewise_restore_{RUN_ID}"
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    asyncio.run(pg(f'CREATE DATABASE "{target}"'))
    try:
        dump = subprocess.run(
            ["pg_dump", "--no-owner", f"{base}/{source}"], capture_output=True, check=True
        )
        restore = subprocess.run(
            ["psql", "-v", "ON_ERROR_STOP=1", "-q", f"{base}/{target}"],
            input=dump.stdout,
            capture_output=True,
            check=False,
        )
        assert restore.returncode == 0, restore.stderr.decode()
        restored = Settings(database_url=keyword_db.database_url.replace(source, target))
        _, ids = asyncio.run(_search(restored, "kubernetes"))
        assert ids == ["kw-rare"]
    finally:
        asyncio.run(pg(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
