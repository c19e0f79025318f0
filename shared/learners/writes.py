"""Applying accepted learner writes (the worker's half), one applier per kind of learner write,
named in the table of kinds (shared/ledger/kinds.py). Each runs in the caller's transaction and
is safe to run twice: a profile only moves to a higher version, and every interaction carries an
event id stored once per learner."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import Level
from shared.learners.repository import LearnerRepository
from shared.learners.schemas import InteractionType
from shared.ledger.schemas import ItemError


class LearnerRef(BaseModel):
    """A payload item naming a learner (`learner.delete`)."""

    id: str


class LearnerProfileItem(LearnerRef):
    """A payload item of `learner.upsert`, as `LearnerIn.to_record` writes it."""

    interests: str | None = None
    level: Level | None = None
    language: str | None = None


class InteractionItem(BaseModel):
    """A payload item of `interaction.batch`, as `InteractionIn.to_record` writes it."""

    user_id: str
    course_id: str
    type: InteractionType
    value: int | None = None
    occurred_at: datetime
    event_id: str | None = None
    # Kept in the ledger's payload (what was cited); attribution is counted at acceptance.
    recommendation_id: str | None = None


@dataclass
class LearnerOutcome:
    applied: int = 0
    errors: list[ItemError] = field(default_factory=list)


async def apply_profiles(
    learners: LearnerRepository,
    courses: CourseRepository,
    task_id: str,
    items: list[tuple[int, LearnerProfileItem]],
    version: int,
) -> LearnerOutcome:
    for _, item in items:
        await learners.upsert_profile(item.model_dump(mode="json"), version=version)
    return LearnerOutcome(applied=len(items))


async def apply_erasures(
    learners: LearnerRepository,
    courses: CourseRepository,
    task_id: str,
    items: list[tuple[int, LearnerRef]],
    version: int,
) -> LearnerOutcome:
    # Imported here: the table of kinds imports this module.
    from shared.ledger.kinds import KINDS, LearnerKind

    learner_types = [t.value for t, kind in KINDS.items() if isinstance(kind, LearnerKind)]
    for _, item in items:
        await learners.erase(item.id)
        await learners.scrub_task_payloads(item.id, learner_types)
    return LearnerOutcome(applied=len(items))


async def apply_interactions(
    learners: LearnerRepository,
    courses: CourseRepository,
    task_id: str,
    items: list[tuple[int, InteractionItem]],
    version: int,
) -> LearnerOutcome:
    outcome = LearnerOutcome()
    rows = await courses.get_many(sorted({item.course_id for _, item in items}))
    known = {course_id for course_id, row in rows.items() if row.deleted_at is None}
    accepted: list[dict[str, Any]] = []
    for index, item in items:
        if item.course_id not in known:
            outcome.errors.append(
                ItemError(
                    index=index,
                    item_id=item.user_id,
                    course_id=item.course_id,
                    code="course_not_found",
                    reason="no live course with this id; the interaction was not stored",
                )
            )
            continue
        accepted.append(
            {
                "learner_id": item.user_id,
                "course_id": item.course_id,
                "type": item.type,
                "value": item.value,
                "occurred_at": item.occurred_at,
                # Without a client id, the task and position identify the event: a redelivery
                # is a no-op.
                "event_id": item.event_id or f"task:{task_id}:{index}",
            }
        )
    await learners.ensure_exist([row["learner_id"] for row in accepted])
    # A repeated event_id is not an error: it was applied once, as asked.
    await learners.add_interactions(accepted)
    outcome.applied = len(accepted)
    return outcome
