"""All SQL for model versions and popularity."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.catalog.filters import CourseFilters, sql_conditions
from shared.catalog.models import Course
from shared.learners.models import Interaction
from shared.recommendations.models import DataChanges, ModelVersion, RecommendationList


@dataclass(frozen=True)
class ActiveModel:
    version: int
    collection: str
    factors: int


@dataclass(frozen=True)
class ReadState:
    """What a recommendation is computed from, read in one round trip: the change count of
    courses and interactions (memos are keyed by it), the newest interaction (the instant the
    data describes) and the active model."""

    changes: int
    newest: datetime | None
    model: ActiveModel | None


async def read_state(session: AsyncSession) -> ReadState:
    active = (ModelVersion.kind == "als", ModelVersion.state == "active")
    row = (
        await session.execute(
            select(
                select(DataChanges.changes).where(DataChanges.id == 1).scalar_subquery(),
                select(func.max(Interaction.occurred_at)).scalar_subquery(),
                select(ModelVersion.id).where(*active).scalar_subquery(),
                select(ModelVersion.collection).where(*active).scalar_subquery(),
                select(ModelVersion.factors).where(*active).scalar_subquery(),
            )
        )
    ).one()
    changes, newest, version, collection, factors = row
    model = (
        ActiveModel(version=int(version), collection=collection, factors=int(factors))
        if version is not None and collection is not None
        else None
    )
    return ReadState(changes=int(changes or 0), newest=newest, model=model)


class ModelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def start(self, *, factors: int, params: dict[str, Any]) -> int:
        version = await self.session.scalar(
            insert(ModelVersion)
            .values(factors=factors, params=params, state="training")
            .returning(ModelVersion.id)
        )
        assert version is not None
        return int(version)

    async def activate(
        self,
        version: int,
        *,
        collection: str,
        gram: bytes,
        learners: int,
        items: int,
        interactions: int,
        train_seconds: float,
    ) -> list[str]:
        """Serve this version from now on; returns the collections no read can use any more
        (those of versions before the one just replaced)."""
        previous = await self.session.scalar(
            select(ModelVersion.id)
            .where(ModelVersion.kind == "als", ModelVersion.state == "active")
            .with_for_update()
        )
        await self.session.execute(
            update(ModelVersion)
            .where(ModelVersion.kind == "als", ModelVersion.state == "active")
            .values(state="retired")
        )
        await self.session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == version)
            .values(
                state="active",
                collection=collection,
                gram=gram,
                learners=learners,
                items=items,
                interactions=interactions,
                train_seconds=train_seconds,
                activated_at=func.now(),
            )
        )
        stale = select(ModelVersion.id, ModelVersion.collection).where(
            ModelVersion.state == "retired", ModelVersion.collection.is_not(None)
        )
        if previous is not None:
            stale = stale.where(ModelVersion.id != previous)
        rows = (await self.session.execute(stale)).all()
        if rows:
            await self.session.execute(
                update(ModelVersion)
                .where(ModelVersion.id.in_([row[0] for row in rows]))
                .values(collection=None)
            )
        return [str(row[1]) for row in rows]

    async def active(self) -> ActiveModel | None:
        row = (
            await self.session.execute(
                select(ModelVersion.id, ModelVersion.collection, ModelVersion.factors).where(
                    ModelVersion.kind == "als", ModelVersion.state == "active"
                )
            )
        ).first()
        if row is None or row[1] is None:
            return None
        return ActiveModel(version=int(row[0]), collection=row[1], factors=int(row[2]))

    async def gram(self, version: int) -> bytes | None:
        return await self.session.scalar(
            select(ModelVersion.gram).where(ModelVersion.id == version)
        )

    async def get(self, version: int) -> ModelVersion | None:
        return await self.session.get(ModelVersion, version)


class PopularityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def trending(
        self,
        filters: CourseFilters,
        *,
        since: datetime,
        limit: int,
        exclude: Sequence[str] = (),
    ) -> list[tuple[str, int]]:
        """(course id, distinct learners) of live courses interacted with since `since`."""
        learners = func.count(func.distinct(Interaction.learner_id))
        query = (
            select(Interaction.course_id, learners)
            .join(Course, Course.id == Interaction.course_id)
            .where(Course.deleted_at.is_(None), Interaction.occurred_at >= since)
            .where(*sql_conditions(filters))
            .group_by(Interaction.course_id)
            .order_by(learners.desc(), Interaction.course_id)
            .limit(limit)
        )
        if exclude:
            query = query.where(Interaction.course_id.not_in(list(exclude)))
        return [(row[0], int(row[1])) for row in (await self.session.execute(query)).all()]

    async def learners_of(self, course_ids: Sequence[str], *, since: datetime) -> dict[str, int]:
        """Distinct learners since `since` of each of these courses (absent: none)."""
        if not course_ids:
            return {}
        learners = func.count(func.distinct(Interaction.learner_id))
        query = (
            select(Interaction.course_id, learners)
            .where(Interaction.course_id.in_(list(course_ids)), Interaction.occurred_at >= since)
            .group_by(Interaction.course_id)
        )
        return {row[0]: int(row[1]) for row in (await self.session.execute(query)).all()}

    async def co_taken(
        self, course_id: str, *, types: Sequence[str], limit: int
    ) -> tuple[int, list[tuple[str, int]]]:
        """Learners who took this course, and the live courses most of them also took (course,
        distinct learners), most first: "learners who took this also took"."""
        takers = (
            select(Interaction.learner_id)
            .where(Interaction.course_id == course_id, Interaction.type.in_(list(types)))
            .distinct()
            .subquery()
        )
        total = await self.session.scalar(select(func.count()).select_from(takers))
        learners = func.count(func.distinct(Interaction.learner_id))
        query = (
            select(Interaction.course_id, learners)
            .join(takers, takers.c.learner_id == Interaction.learner_id)
            .join(Course, Course.id == Interaction.course_id)
            .where(
                Interaction.course_id != course_id,
                Interaction.type.in_(list(types)),
                Course.deleted_at.is_(None),
            )
            .group_by(Interaction.course_id)
            .order_by(learners.desc(), Interaction.course_id)
            .limit(limit)
        )
        rows = (await self.session.execute(query)).all()
        return int(total or 0), [(row[0], int(row[1])) for row in rows]


@dataclass(frozen=True)
class IssuedList:
    id: str
    surface: str
    learner_id: str | None
    strategy: str
    model_version: int | None
    reasons: dict[str, str]


class IssuedListRepository:
    """The served lists interactions may cite (`recommendation_id`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, issued: IssuedList) -> None:
        await self.session.execute(
            insert(RecommendationList).values(
                id=issued.id,
                surface=issued.surface,
                learner_id=issued.learner_id,
                strategy=issued.strategy,
                model_version=issued.model_version,
                reasons=issued.reasons,
            )
        )

    async def get_many(self, ids: Sequence[str]) -> dict[str, IssuedList]:
        if not ids:
            return {}
        rows = await self.session.execute(
            select(RecommendationList).where(RecommendationList.id.in_(sorted(set(ids))))
        )
        return {
            row.id: IssuedList(
                row.id, row.surface, row.learner_id, row.strategy, row.model_version, row.reasons
            )
            for row in rows.scalars()
        }

    async def erase_learner(self, learner_id: str) -> int:
        result = await self.session.execute(
            delete(RecommendationList).where(RecommendationList.learner_id == learner_id)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def prune(self, *, older_than: datetime, limit: int) -> int:
        """Delete up to `limit` lists issued before `older_than` (retention)."""
        old = (
            select(RecommendationList.id)
            .where(RecommendationList.created_at < older_than)
            .order_by(RecommendationList.created_at)
            .limit(limit)
        )
        result = await self.session.execute(
            delete(RecommendationList).where(RecommendationList.id.in_(old))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
