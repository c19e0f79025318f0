"""All SQL for learners and interactions."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.learners.models import Interaction, Learner
from shared.recommendations.models import RecommendationList


@dataclass(frozen=True)
class InteractionRow:
    course_id: str
    type: str
    value: int | None
    occurred_at: datetime


class LearnerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- reads ------------------------------------------------------------------------------
    async def get(self, learner_id: str) -> Learner | None:
        return await self.session.get(Learner, learner_id)

    async def counts(self, learner_id: str) -> tuple[dict[str, int], datetime | None]:
        rows = (
            await self.session.execute(
                select(Interaction.type, func.count(), func.max(Interaction.occurred_at))
                .where(Interaction.learner_id == learner_id)
                .group_by(Interaction.type)
            )
        ).all()
        latest = max((row[2] for row in rows), default=None)
        return {row[0]: int(row[1]) for row in rows}, latest

    async def with_interactions(
        self, learner_id: str, *, limit: int = 1000
    ) -> tuple[Learner | None, list[InteractionRow]]:
        """A learner and their most recent interactions (what their recommendations are
        computed from), newest first, in one round trip."""
        recent = (
            select(
                Interaction.id,
                Interaction.course_id,
                Interaction.type,
                Interaction.value,
                Interaction.occurred_at,
            )
            .where(Interaction.learner_id == Learner.id)
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(limit)
            .lateral("recent")
        )
        result = await self.session.execute(
            select(Learner, recent.c.course_id, recent.c.type, recent.c.value, recent.c.occurred_at)
            .outerjoin(recent, true())
            .where(Learner.id == learner_id)
            .order_by(recent.c.occurred_at.desc(), recent.c.id.desc())
        )
        learner: Learner | None = None
        rows = []
        for row in result.all():
            learner = row[0]
            if row[1] is not None:
                rows.append(InteractionRow(row[1], row[2], row[3], row[4]))
        return learner, rows

    async def all_interactions(self) -> list[tuple[str, str, str, int | None, datetime]]:
        """(learner, course, type, value, occurred_at) of every interaction: training input."""
        rows = await self.session.execute(
            select(
                Interaction.learner_id,
                Interaction.course_id,
                Interaction.type,
                Interaction.value,
                Interaction.occurred_at,
            )
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows.all()]

    # --- writes (the worker's) ----------------------------------------------------------------
    async def upsert_profile(self, record: dict[str, Any], *, version: int) -> None:
        statement = insert(Learner).values(
            id=record["id"],
            interests=record.get("interests"),
            level=record.get("level"),
            language=record.get("language"),
            version=version,
        )
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[Learner.id],
            set_={
                "interests": excluded.interests,
                "level": excluded.level,
                "language": excluded.language,
                "version": excluded.version,
                "updated_at": func.now(),
            },
            where=Learner.version < excluded.version,
        )
        await self.session.execute(statement)

    async def ensure_exist(self, learner_ids: Sequence[str]) -> None:
        """Create learners first seen in interactions (an empty profile)."""
        if not learner_ids:
            return
        statement = insert(Learner).values([{"id": i} for i in sorted(set(learner_ids))])
        await self.session.execute(statement.on_conflict_do_nothing(index_elements=[Learner.id]))

    async def add_interactions(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert interactions, skipping events already stored; returns how many were new."""
        if not rows:
            return 0
        statement = (
            insert(Interaction)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=["learner_id", "event_id"])
            .returning(Interaction.id)
        )
        return len((await self.session.execute(statement)).all())

    async def erase(self, learner_id: str) -> int:
        """Delete a learner and (by cascade) their interactions; returns the interactions gone."""
        gone = await self.session.scalar(
            select(func.count()).where(Interaction.learner_id == learner_id)
        )
        await self.session.execute(delete(Learner).where(Learner.id == learner_id))
        # The lists served to them say what they were shown: theirs too.
        await self.session.execute(
            delete(RecommendationList).where(RecommendationList.learner_id == learner_id)
        )
        return int(gone or 0)

    async def scrub_task_payloads(self, learner_id: str, types: Sequence[str]) -> int:
        """Remove a learner's data from the payloads of tasks of these types (the learner
        writes), so the ledger keeps no trace of them and a write still queued for them applies
        nothing."""
        result = await self.session.execute(
            text(
                "UPDATE tasks SET payload = jsonb_set(payload, '{items}', ("
                "  SELECT coalesce(jsonb_agg(CASE"
                "    WHEN item->>'user_id' = :id OR item->>'id' = :id"
                "    THEN '{\"erased\": true}'::jsonb ELSE item END ORDER BY position), '[]')"
                "  FROM jsonb_array_elements(payload->'items') WITH ORDINALITY AS e(item, position)"
                ")) WHERE type IN :types"
                " AND (payload @> jsonb_build_object('items', jsonb_build_array("
                "        jsonb_build_object('user_id', CAST(:id AS text))))"
                "   OR payload @> jsonb_build_object('items', jsonb_build_array("
                "        jsonb_build_object('id', CAST(:id AS text)))))"
            ).bindparams(bindparam("types", expanding=True)),
            {"id": learner_id, "types": list(types)},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
