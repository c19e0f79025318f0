"""Similar courses: what the embedding finds close, what learners who took the course also took,
and shared skills, blended and explained like recommendations.

score = cosine(embeddings) + similar_co_taken * co + similar_skills * jaccard(skills), where
co = (learners who took both) / (learners who took this one + similar_shrink): the share of its
learners who also took the other, shrunk towards 0 while few have taken it. None of the three
is fitted to one file: cosine is the model's, co-enrolment a conditional share, skills a set
overlap; a course nobody took, or without skills, is ranked by its content alone. Candidates are
the content search's nearest and the most co-taken; each is scored by every signal.
"""

from dataclasses import dataclass, replace

import numpy as np
from pymilvus import AsyncMilvusClient
from sqlalchemy.ext.asyncio import AsyncSession

from shared.catalog.filters import CourseFilters, matches, milvus_expression
from shared.catalog.models import Course
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import course_out
from shared.errors import CourseNotFound, CourseNotIndexed
from shared.milvus import literal, loaded_async
from shared.recommendations import tracking
from shared.recommendations.repository import PopularityRepository
from shared.recommendations.schemas import SimilarCourse, SimilarPage, SimilarReasonCode
from shared.recommendations.weights import TAKEN_TYPES
from shared.settings import Settings

SimilarReason = SimilarReasonCode


@dataclass(frozen=True)
class SimilarScore:
    course_id: str
    score: float
    cosine: float
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


def jaccard(a: list[str], b: list[str]) -> tuple[float, tuple[str, ...]]:
    left, right = set(a), set(b)
    if not left or not right:
        return 0.0, ()
    shared = left & right
    return len(shared) / len(left | right), tuple(sorted(shared))


def rank(signals: Signals, settings: Settings, limit: int) -> list[SimilarScore]:
    """Blend the signals; the reason is the signal whose contribution stands out most."""
    scored: list[tuple[SimilarScore, dict[SimilarReason, float]]] = []
    for course_id, cosine in signals.cosine.items():
        row = signals.rows.get(course_id)
        if row is None:
            continue
        together = signals.together.get(course_id, 0)
        co = together / (signals.takers + settings.similar_shrink) if together else 0.0
        overlap, shared = jaccard(signals.source.skills or [], row.skills or [])
        parts = {
            SimilarReason.similar_content: cosine,
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
            if reason is SimilarReason.similar_content or parts[reason] > 0
        }
        best = max(lifts, key=lambda r: (lifts[r], r is SimilarReason.similar_content))
        result.append(replace(item, reason=best))
    return result


class SimilarCourses:
    def __init__(self, milvus: AsyncMilvusClient, settings: Settings):
        self.milvus = milvus
        self.settings = settings

    async def signals(
        self, session: AsyncSession, course_id: str, filters: CourseFilters
    ) -> Signals:
        repo = CourseRepository(session)
        source = await repo.get_live(course_id)
        if source is None:
            raise CourseNotFound(course_id)
        collection = self.settings.milvus_collection
        found = await loaded_async(
            self.milvus,
            collection,
            lambda: self.milvus.query(
                collection, filter=f"id == {literal(course_id)}", output_fields=["vector"]
            ),
        )
        if not found:
            raise CourseNotIndexed(course_id)
        vector = np.asarray(found[0]["vector"], dtype=np.float64)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        pool = self.settings.similar_candidates
        expression = milvus_expression(filters, exclude_id=course_id)
        kwargs = {"limit": pool, "output_fields": ["version"]}
        if expression:
            kwargs["filter"] = expression
        hits = await loaded_async(
            self.milvus,
            collection,
            lambda: self.milvus.search(collection, data=[vector.tolist()], **kwargs),
        )
        cosine = {hit["id"]: float(hit["distance"]) for hit in hits[0]}
        takers, co_taken = 0, list[tuple[str, int]]()
        if self.settings.similar_co_taken > 0:
            takers, co_taken = await PopularityRepository(session).co_taken(
                course_id, types=sorted(TAKEN_TYPES), limit=pool
            )
        together = dict(co_taken)
        rows = await repo.get_many(sorted(set(cosine) | set(together)))
        rows = {
            i: row
            for i, row in rows.items()
            if row.deleted_at is None and i != course_id and matches(filters, row)
        }
        # The co-taken outside the nearest: their own cosine, from their stored vectors.
        missing = [i for i in together if i in rows and i not in cosine]
        if missing:
            listed = ", ".join(literal(i) for i in missing)
            vectors = await loaded_async(
                self.milvus,
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
        return Signals(source, cosine, together, takers, rows)

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
            similarity=round(item.cosine, 6),
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
    return SimilarPage(items=items, recommendation_id=recommendation_id)
