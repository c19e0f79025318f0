"""Applying accepted course writes to PostgreSQL (the worker's half of the write path).

Every write carries the version it was accepted with. Applying one is idempotent and
order-independent: a row only ever moves to a higher version, and a delete leaves a tombstone so
a late, older write cannot bring a course back.
"""

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.catalog.fields import course_record
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import CourseIn
from shared.tasks.schemas import TaskType

T = TypeVar("T")

OPERATIONS = {
    TaskType.course_upsert: "upsert",
    TaskType.course_bulk_upsert: "upsert",
    TaskType.course_patch: "patch",
    TaskType.course_delete: "delete",
}


@dataclass
class ChunkOutcome:
    applied: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Courses whose Milvus entry may now differ from PostgreSQL.
    touched: list[str] = field(default_factory=list)


def chunked(items: list[T], size: int) -> list[list[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _item_error(index: int, course_id: str | None, code: str, reason: str) -> dict[str, Any]:
    return {"index": index, "course_id": course_id, "code": code, "reason": reason}


async def apply_chunk(
    repo: CourseRepository, operation: str, items: list[tuple[int, dict[str, Any]]], version: int
) -> ChunkOutcome:
    """Apply one chunk of a task's items; the caller commits."""
    outcome = ChunkOutcome()
    if operation == "upsert":
        records = []
        for index, item in items:
            try:
                records.append(CourseIn.model_validate(item).to_record())
            except (
                ValidationError
            ) as exc:  # validated at the API; only a changed contract lands here
                outcome.errors.append(
                    _item_error(index, item.get("id"), "invalid_course", str(exc))
                )
        # One lock order (by id) for existing rows and for new ones alike: no deadlocks.
        records.sort(key=lambda record: record["id"])
        await repo.get_many([r["id"] for r in records], lock=True)
        await repo.upsert_many(records, version=version)
        outcome.applied = len(records)
        outcome.touched = [r["id"] for r in records]
    elif operation == "delete":
        ids = sorted(item["id"] for _, item in items)
        await repo.get_many(ids, lock=True)
        await repo.tombstone_many(ids, version=version)
        outcome.applied = len(ids)
        outcome.touched = ids
    elif operation == "patch":
        rows = await repo.get_many([item["id"] for _, item in items], lock=True)
        for index, item in items:
            course_id = item["id"]
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
                merged = CourseIn.model_validate(
                    {**course_record(row), **item["changes"]}
                ).to_record()
            except ValidationError as exc:
                reason = "; ".join(error["msg"] for error in exc.errors())
                outcome.errors.append(_item_error(index, course_id, "invalid_patch", reason))
                continue
            await repo.replace(merged, version=version)
            outcome.applied += 1
            outcome.touched.append(course_id)
    else:
        raise ValueError(f"unknown operation {operation!r}")
    return outcome
