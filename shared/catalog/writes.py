"""Applying accepted course writes to PostgreSQL (the worker's half of the write path).

Every write carries the version it was accepted with. Applying one is idempotent and
order-independent: a row only ever moves to a higher version, and a delete leaves a tombstone so
a late, older write cannot bring a course back. Each kind of course write has one applier here,
named in the table of kinds (shared/ledger/kinds.py); the caller locks nothing and commits.
"""

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.catalog.fields import course_record
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import CourseIn
from shared.ledger.schemas import ItemError

T = TypeVar("T")


class CourseRef(BaseModel):
    """A payload item naming a course (`course.delete`)."""

    id: str


class CoursePatchItem(CourseRef):
    """A payload item of `course.patch`: the fields to change, `null` clearing one."""

    changes: dict[str, Any]


@dataclass
class ChunkOutcome:
    applied: int = 0
    errors: list[ItemError] = field(default_factory=list)
    # Courses whose Milvus entry may now differ from PostgreSQL.
    touched: list[str] = field(default_factory=list)


def chunked(items: list[T], size: int) -> list[list[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _item_error(index: int, course_id: str | None, code: str, reason: str) -> ItemError:
    return ItemError(index=index, item_id=course_id, course_id=course_id, code=code, reason=reason)


async def apply_upserts(
    repo: CourseRepository, items: list[tuple[int, CourseIn]], version: int
) -> ChunkOutcome:
    records = [course.to_record() for _, course in items]
    # One lock order (by id) for existing rows and for new ones alike: no deadlocks.
    records.sort(key=lambda record: record["id"])
    await repo.get_many([r["id"] for r in records], lock=True)
    await repo.upsert_many(records, version=version)
    return ChunkOutcome(applied=len(records), touched=[r["id"] for r in records])


async def apply_deletes(
    repo: CourseRepository, items: list[tuple[int, CourseRef]], version: int
) -> ChunkOutcome:
    ids = sorted(item.id for _, item in items)
    await repo.get_many(ids, lock=True)
    await repo.tombstone_many(ids, version=version)
    return ChunkOutcome(applied=len(ids), touched=ids)


async def apply_patches(
    repo: CourseRepository, items: list[tuple[int, CoursePatchItem]], version: int
) -> ChunkOutcome:
    outcome = ChunkOutcome()
    rows = await repo.get_many([item.id for _, item in items], lock=True)
    for index, item in items:
        course_id = item.id
        row = rows.get(course_id)
        if row is None or (row.deleted_at is not None and row.version < version):
            outcome.errors.append(
                _item_error(index, course_id, "course_not_found", "no course with this id")
            )
            continue
        if row.version >= version:  # a newer write (or this one, redelivered) already landed
            outcome.applied += 1
            continue
        try:
            merged = CourseIn.model_validate({**course_record(row), **item.changes}).to_record()
        except ValidationError as exc:
            reason = "; ".join(error["msg"] for error in exc.errors())
            outcome.errors.append(_item_error(index, course_id, "invalid_patch", reason))
            continue
        await repo.replace(merged, version=version)
        outcome.applied += 1
        outcome.touched.append(course_id)
    return outcome
