"""Similar courses: what the embedding finds close, what learners who took the course also took,
and shared skills, blended and explained like recommendations.

score = cosine(embeddings) + similar_co_taken * co + similar_skills * jaccard(skills), where
co = (learners who took both) / (learners who took this one + similar_shrink): the share of its
learners who also took the other, shrunk towards 0 while few have taken it. None of the three
is fitted to one file: cosine is the model's, co-enrolment a conditional share, skills a set
overlap; a course nobody took, or without skills, is ranked by its content alone. Candidates are
the content search's nearest and the most co-taken; each is scored by every signal. Without the
vector index (`VectorBudget`), the most co-taken and the courses sharing most skills, without
cosine, marked degraded.
"""

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from pymilvus import AsyncMilvusClient
from sqlalchemy.ext.asyncio import AsyncSession

from shared.catalog.filters import CourseFilters, matches, milvus_expression
from shared.catalog.models import Course
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import course_out
from shared.errors import CourseNotFound, CourseNotIndexed
from shared.milvus import literal
from shared.recommendations import tracking
from shared.recommendations.budget import VectorBudget
from shared.recommendations.repository import PopularityRepository
from shared.recommendations.schemas import SimilarCourse, SimilarPage, SimilarReasonCode
from shared.recommendations.weights import TAKEN_TYPES
from shared.settings import Settings

SimilarReason = SimilarReasonCode


@dataclass(frozen=True)
class SimilarScore:
    course_id: str
    score: float
    cosine: float | None  # None when the vector index did not answer
    co_taken: float
    together: int  # learners who took both
    skills: float
    shared: tuple[str, ...]
    reason: SimilarReasonCode | None  # None until ranked


@dataclass
class Signals:
    """Each candidate's raw signals (the evaluation scores them under other weights too)."""

    source: Course
    cosine: dict[str, float]
    together: dict[str, int]
    takers: int
    rows: dict[str, Course]
    # What they were found without ("semantic": the vector index did not answer; no cosine).
    degraded: list[Literal["semantic"]] = field(default_factory=list)


def jaccard(a: list[str], b: list[str]) -> tuple[float, tuple[str, ...]]:
    left, right = set(a), set(b)
    if not left or not right:
        return 0.0, ()
    shared = left & right
    return len(shared) / len(left | right), tuple(sorted(shared))


def rank(signals: Signals, settings: Settings, limit: int) -> list[SimilarScore]:
    """Blend the signals; the reason is the signal whose contribution stands out most."""
    scored: list[tuple[SimilarScore, dict[SimilarReason, float]]] = []
    semantic = not signals.degraded
    for course_id, row in signals.rows.items():
        cosine = signals.cosine.get(course_id)
        if cosine is None and semantic:
            continue  # not in the index yet
        together = signals.together.get(course_id, 0)
        co = together / (signals.takers + settings.similar_shrink) if together else 0.0
        overlap, shared = jaccard(signals.source.skills or [], row.skills or [])
        parts = {
            SimilarReason.similar_content: cosine or 0.0,
            SimilarReason.taken_together: settings.similar_co_taken * co,
            SimilarReason.shared_skills: settings.similar_skills * overlap,
        }
        item = SimilarScore(
            course_id, sum(parts.values()), cosine, co, together, overlap, shared, reason=None
        )
        scored.append((item, parts))
    if not scored:
        return []
    # Lift of each part over its mean among the candidates, in its own spread (as the blend of
    # recommendations does), so a course that is there for co-enrolment says so.
    means, spreads = {}, {}
    for reason in SimilarReason:
        values = np.asarray([parts[reason] for _, parts in scored])
        means[reason], spreads[reason] = float(values.mean()), max(float(values.std()), 1e-9)
    scored.sort(key=lambda entry: (-entry[0].score, entry[0].course_id))
    result = []
    for item, parts in scored[:limit]:
        lifts = {
            reason: (parts[reason] - means[reason]) / spreads[reason]
            for reason in SimilarReason
            if (reason is SimilarReason.similar_content and semantic) or parts[reason] > 0
        }
        fallback = SimilarReason.taken_together if item.together else SimilarReason.shared_skills
        best = (
            max(lifts, key=lambda r: (lifts[r], r is SimilarReason.similar_content))
            if lifts
            else fallback
        )
        result.append(replace(item, reason=best))
    return result


class SimilarCourses:
    def __init__(
        self, milvus: AsyncMilvusClient, settings: Settings, budget: VectorBudget | None = None
    ):
        self.milvus = milvus
        self.settings = settings
        self.budget = budget or VectorBudget(milvus, settings)

    async def signals(
        self, session: AsyncSession, course_id: str, filters: CourseFilters
    ) -> Signals:
        repo = CourseRepository(session)
        source = await repo.get_live(course_id)
        if source is None:
            raise CourseNotFound(course_id)
        pool = self.settings.similar_candidates
        takers, together = 0, dict[str, int]()
        if self.settings.similar_co_taken > 0:
            takers, co_taken = await PopularityRepository(session).co_taken(
                course_id, types=sorted(TAKEN_TYPES), limit=pool
            )
            together = dict(co_taken)
        cosine: dict[str, float] = {}
        degraded: list[Literal["semantic"]] = []
        if await self.budget.run(
            "similar", lambda: self._cosines(course_id, filters, together, cosine)
        ):
            # What PostgreSQL alone can answer: the co-taken and the courses sharing most
            # skills, ranked by those two, and said so.
            cosine, degraded = {}, ["semantic"]
            sharing = await repo.sharing_skills(source, filters, limit=pool)
            candidates = set(together) | set(sharing)
        else:
            candidates = set(cosine) | set(together)
        rows = await repo.get_many(sorted(candidates))
        rows = {
            i: row
            for i, row in rows.items()
            if row.deleted_at is None and i != course_id and matches(filters, row)
        }
        return Signals(source, cosine, together, takers, rows, degraded)

    async def _cosines(
        self,
        course_id: str,
        filters: CourseFilters,
        together: dict[str, int],
        cosine: dict[str, float],
    ) -> None:
        """Into `cosine`: the content search's nearest, and the co-taken outside them from their
        stored vectors."""
        collection = self.settings.milvus_collection
        found = await self.budget.call(
            collection,
            lambda: self.milvus.query(
                collection, filter=f"id == {literal(course_id)}", output_fields=["vector"]
            ),
        )
        if not found:
            raise CourseNotIndexed(course_id)
        vector = np.asarray(found[0]["vector"], dtype=np.float64)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        expression = milvus_expression(filters, exclude_id=course_id)
        kwargs = {"limit": self.settings.similar_candidates, "output_fields": ["version"]}
        if expression:
            kwargs["filter"] = expression
        hits = await self.budget.call(
            collection,
            lambda: self.milvus.search(collection, data=[vector.tolist()], **kwargs),
        )
        cosine.update({hit["id"]: float(hit["distance"]) for hit in hits[0]})
        missing = [i for i in together if i not in cosine]
        if missing:
            listed = ", ".join(literal(i) for i in missing)
            vectors = await self.budget.call(
                collection,
                lambda: self.milvus.query(
                    collection,
                    filter=f"id in [{listed}]",
                    output_fields=["vector"],
                    limit=len(missing),
                ),
            )
            for entry in vectors:
                other = np.asarray(entry["vector"], dtype=np.float64)
                norm = max(float(np.linalg.norm(other)), 1e-12)
                cosine[entry["id"]] = float(other @ vector) / norm

    async def similar(
        self, session: AsyncSession, course_id: str, filters: CourseFilters, *, limit: int
    ) -> tuple[Signals, list[SimilarScore]]:
        signals = await self.signals(session, course_id, filters)
        return signals, rank(signals, self.settings, limit)


def reason_text(item: SimilarScore, source: Course) -> str:
    assert item.reason is not None
    if item.reason is SimilarReason.taken_together:
        learners = "learner" if item.together == 1 else "learners"
        return f"{item.together} {learners} who took “{source.title}” also took it"
    if item.reason is SimilarReason.shared_skills:
        return f"Shares skills with “{source.title}”: {', '.join(item.shared[:3])}"
    return f"Close in content to “{source.title}”"


async def similar_page(
    finder: SimilarCourses,
    session: AsyncSession,
    course_id: str,
    filters: CourseFilters,
    *,
    limit: int,
) -> SimilarPage:
    """The similar courses as served: each with its reason, the list recorded (its id)."""
    signals, ranked = await finder.similar(session, course_id, filters, limit=limit)
    items = [
        SimilarCourse(
            **course_out(signals.rows[item.course_id]).model_dump(),
            score=round(item.score, 6),
            similarity=None if item.cosine is None else round(item.cosine, 6),
            taken_together=item.together,
            reason_code=item.reason or SimilarReason.similar_content,
            reason=reason_text(item, signals.source),
        )
        for item in ranked
    ]
    recommendation_id = await tracking.issue(
        session,
        surface=tracking.SIMILAR,
        learner_id=None,
        strategy=tracking.SIMILAR,
        model_version=None,
        reasons=[(item.id, item.reason_code.value) for item in items],
    )
    return SimilarPage(items=items, recommendation_id=recommendation_id, degraded=signals.degraded)
