"""All SQL for courses. Writes are guarded by version: a row only moves forward."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, any_, case, func, select, text, update
from sqlalchemy.dialects.postgresql import array, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.catalog.fields import FIELDS, WRITTEN
from shared.catalog.filters import CourseFilters, sql_conditions
from shared.catalog.models import Course
from shared.catalog.schemas import content_hash


def _row(record: dict[str, Any], version: int) -> dict[str, Any]:
    row = {field.attr: field.stored(record) for field in FIELDS}
    row.update(version=version, content_hash=content_hash(record))
    return row


class CourseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- reads ------------------------------------------------------------------------------
    async def get_live(self, course_id: str) -> Course | None:
        course = await self.session.get(Course, course_id)
        return course if course is not None and course.deleted_at is None else None

    async def get_many(self, ids: Sequence[str], *, lock: bool = False) -> dict[str, Course]:
        """Rows by id, tombstones included; `lock` takes row locks until the transaction ends."""
        if not ids:
            return {}
        query = select(Course).where(Course.id.in_(ids)).order_by(Course.id)
        if lock:
            query = query.with_for_update()
        rows = (await self.session.scalars(query.execution_options(populate_existing=True))).all()
        return {row.id: row for row in rows}

    async def sharing_skills(
        self, course: Course, filters: CourseFilters, *, limit: int
    ) -> list[str]:
        """Live courses within the filters sharing most skills with this one, most first: what
        stands for content similarity when the vector index does not answer."""
        if not course.skills:
            return []
        skill = func.unnest(Course.skills).column_valued("skill")
        shared = (
            select(func.count())
            .where(skill == any_(array(course.skills, type_=String)))
            .correlate(Course)
            .scalar_subquery()
        )
        query = (
            select(Course.id)
            .where(
                Course.skills.overlap(array(course.skills, type_=String)),
                Course.id != course.id,
                Course.deleted_at.is_(None),
                *sql_conditions(filters),
            )
            .order_by(shared.desc(), Course.id)
            .limit(limit)
        )
        return list((await self.session.scalars(query)).all())

    async def indexed_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """The content hash of each live course whose Milvus entry is its current version: the
        text Milvus holds the embedding of."""
        if not ids:
            return {}
        query = select(Course.id, Course.content_hash).where(
            Course.id.in_(list(ids)),
            Course.deleted_at.is_(None),
            Course.index_state == "indexed",
            Course.indexed_version == Course.version,
        )
        return {row[0]: row[1] for row in (await self.session.execute(query)).all()}

    async def list_live(
        self, filters: CourseFilters, *, after_id: str | None, limit: int
    ) -> list[Course]:
        query = (
            select(Course)
            .where(Course.deleted_at.is_(None), *sql_conditions(filters))
            .order_by(Course.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(Course.id > after_id)
        return list((await self.session.scalars(query)).all())

    # --- writes (the worker's; each moves a row forward only) ----------------------------------
    async def upsert_many(self, records: Sequence[dict[str, Any]], *, version: int) -> None:
        if not records:
            return
        statement = insert(Course).values([_row(record, version) for record in records])
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[Course.id],
            set_={
                **{field.name: excluded[field.name] for field in WRITTEN},
                "version": excluded.version,
                "content_hash": excluded.content_hash,
                "deleted_at": None,
                # A course re-created after a delete starts a new life.
                "created_at": case(
                    (Course.deleted_at.is_not(None), func.now()), else_=Course.created_at
                ),
                "updated_at": func.now(),
                "index_state": "pending",
                "index_error": None,
            },
            where=Course.version < excluded.version,
        )
        await self.session.execute(statement)

    async def replace(self, record: dict[str, Any], *, version: int) -> None:
        await self.upsert_many([record], version=version)

    async def tombstone_many(self, ids: Sequence[str], *, version: int) -> None:
        if not ids:
            return
        statement = insert(Course).values(
            [
                {
                    "id": course_id,
                    "title": "",
                    "description": "",
                    "version": version,
                    "content_hash": "",
                    "deleted_at": func.now(),
                }
                for course_id in ids
            ]
        )
        statement = statement.on_conflict_do_update(
            index_elements=[Course.id],
            set_={
                "version": statement.excluded.version,
                "deleted_at": func.now(),
                "updated_at": func.now(),
                "index_state": "pending",
                "index_error": None,
            },
            where=Course.version < statement.excluded.version,
        )
        await self.session.execute(statement)

    async def mark_indexed(self, versions: dict[str, int]) -> None:
        """Record that Milvus holds these versions (rows that moved on since are left pending)."""
        if not versions:
            return
        await self.session.execute(
            text(
                "UPDATE courses SET index_state = 'indexed', indexed_version = synced.version,"
                " index_error = NULL"
                " FROM unnest(CAST(:ids AS text[]), CAST(:versions AS bigint[]))"
                " AS synced(id, version)"
                " WHERE courses.id = synced.id AND courses.version = synced.version"
            ),
            {"ids": list(versions), "versions": list(versions.values())},
        )

    async def mark_index_failed(self, ids: Sequence[str], *, version: int, error: str) -> None:
        await self.session.execute(
            update(Course)
            .where(Course.id.in_(ids), Course.version == version, Course.index_state != "indexed")
            .values(index_state="failed", index_error=error[:2000])
        )

    async def index_lag(self) -> dict[str, int]:
        """Courses whose Milvus entry lags PostgreSQL, by index state (the partial backlog index
        keeps this cheap however large the catalogue)."""
        rows = (
            await self.session.execute(
                select(Course.index_state, func.count())
                .where(Course.index_state != "indexed")
                .group_by(Course.index_state)
            )
        ).all()
        return {"pending": 0, "failed": 0} | {state: int(count) for state, count in rows}
