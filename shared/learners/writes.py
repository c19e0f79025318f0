"""Applying accepted learner writes (the worker's half). Safe to run twice: a profile only moves
to a higher version, and every interaction carries an event id stored once per learner."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.catalog.repository import CourseRepository
from shared.learners.repository import LearnerRepository
from shared.ledger.schemas import TaskType


@dataclass
class LearnerOutcome:
    applied: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def _event_id(task_id: str, index: int, item: dict[str, Any]) -> str:
    # Without a client id, the task and position identify the event: a redelivery is a no-op.
    return item.get("event_id") or f"task:{task_id}:{index}"


async def apply_learner_task(
    learners: LearnerRepository,
    courses: CourseRepository,
    task_type: TaskType,
    task_id: str,
    items: list[dict[str, Any]],
    version: int,
) -> LearnerOutcome:
    """Apply a whole learner task in the caller's transaction."""
    outcome = LearnerOutcome()
    live = [(index, item) for index, item in enumerate(items) if not item.get("erased")]
    if task_type is TaskType.learner_upsert:
        for _, item in live:
            await learners.upsert_profile(item, version=version)
            outcome.applied += 1
    elif task_type is TaskType.learner_delete:
        for _, item in live:
            await learners.erase(item["id"])
            await learners.scrub_task_payloads(item["id"])
            outcome.applied += 1
    elif task_type is TaskType.interaction_batch:
        rows = await courses.get_many(sorted({item["course_id"] for _, item in live}))
        known = {course_id for course_id, row in rows.items() if row.deleted_at is None}
        accepted = []
        for index, item in live:
            if item["course_id"] not in known:
                outcome.errors.append(
                    {
                        "index": index,
                        "course_id": item["course_id"],
                        "code": "course_not_found",
                        "reason": "no live course with this id; the interaction was not stored",
                    }
                )
                continue
            accepted.append(
                {
                    "learner_id": item["user_id"],
                    "course_id": item["course_id"],
                    "type": item["type"],
                    "value": item.get("value"),
                    "occurred_at": datetime.fromisoformat(item["occurred_at"]),
                    "event_id": _event_id(task_id, index, item),
                }
            )
        await learners.ensure_exist([row["learner_id"] for row in accepted])
        # A repeated event_id is not an error: it was applied once, as asked.
        await learners.add_interactions(accepted)
        outcome.applied = len(accepted)
    else:
        raise ValueError(f"not a learner task: {task_type}")
    return outcome
