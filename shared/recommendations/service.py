"""What a learner should take next: content, collaborative (ALS) and popularity candidates,
blended. Everything a read needs is computed at read time from PostgreSQL and Milvus, so the
learner's latest interaction counts at once, without a retrain.

- content: a learner vector (their courses' embeddings, weighted by interaction type, rating and
  recency, plus their interests text) searched in the course collection;
- collaborative: the learner folded into the active ALS model (one least-squares solve against
  the item factors of their courses, as ALS itself does per learner), searched by inner product
  in that model's item-factor collection;
- popularity: distinct learners per course within a window.
The API route and the evaluation (bench/evaluate_recs.py) both call `Recommender.recommend`.
"""

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
from pymilvus import AsyncMilvusClient
from sqlalchemy.ext.asyncio import AsyncSession

from shared.catalog.filters import CourseFilters, matches, milvus_expression
from shared.catalog.models import Course
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import course_out
from shared.catalog.search import CourseSearch
from shared.learners.models import Learner
from shared.learners.repository import LearnerRepository
from shared.milvus import literal
from shared.recommendations.budget import VectorBudget
from shared.recommendations.repository import (
    ActiveModel,
    ModelRepository,
    PopularityRepository,
    ReadState,
    read_state,
)
from shared.recommendations.schemas import (
    ReasonCode,
    RecommendationPage,
    RecommendedCourse,
    Strategy,
)
from shared.recommendations.similar import SimilarCourses
from shared.recommendations.weights import TAKEN_TYPES, aggregate
from shared.settings import Settings

POPULAR_POOL = 1000
PREFERENCE_BOOST = 0.05
_NO_FACTORS = np.empty(0)


@dataclass(frozen=True)
class BlendWeights:
    content: float
    als: float
    popular: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "BlendWeights":
        return cls(settings.blend_content, settings.blend_als, settings.blend_popular)


@dataclass
class Candidates:
    """Each model's scored candidates for one learner (seen courses already excluded)."""

    strategy: Strategy
    learner: Learner | None = None
    seen: set[str] = field(default_factory=set)
    history: dict[str, float] = field(default_factory=dict)
    content: dict[str, float] = field(default_factory=dict)
    als: dict[str, float] = field(default_factory=dict)
    popular: dict[str, float] = field(default_factory=dict)
    model_version: int | None = None
    history_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    # Embeddings of the candidates, so each is scored by content exactly.
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    # The content search's own answer, nearest first: the learner's subjects.
    nearest: list[str] = field(default_factory=list)
    memo: "_Memo | None" = field(default=None, repr=False)
    # What the candidates were found without ("semantic": the vector index did not answer).
    degraded: list[Literal["semantic"]] = field(default_factory=list)


@dataclass(frozen=True)
class Ranked:
    course_id: str
    score: float
    reason: ReasonCode


def _on_scale(candidates: Candidates) -> list[tuple[str, dict[str, float], float]]:
    """Each model's scores on a fixed scale, and the score of a course outside its candidates.

    Fixed scales, not min-max within each list: cosine similarity as it is; ALS scores over the
    learner's best ALS score; popularity as log(1 + learners) over the most popular course's.
    A course a model did not return scores that model's lowest candidate (it is at most that
    good). Min-max within the lists stretched small differences at the bottom of each list and
    measured worse on the evaluation."""
    scaled = []
    if candidates.content:
        floor = min(candidates.content.values())
        scaled.append(("content", candidates.content, floor))
    if candidates.als:
        top = max(max(candidates.als.values()), 1e-9)
        als = {key: max(0.0, value / top) for key, value in candidates.als.items()}
        scaled.append(("als", als, min(als.values())))
    if candidates.popular:
        top = max(max(candidates.popular.values()), 1e-9)
        scaled.append(("popular", {k: v / top for k, v in candidates.popular.items()}, 0.0))
    return scaled


def blend(candidates: Candidates, weights: BlendWeights, limit: int) -> list[Ranked]:
    """Weighted sum of the models' scores, with the reason for each course."""
    weight_of = {"content": weights.content, "als": weights.als, "popular": weights.popular}
    parts = [part for part in _on_scale(candidates) if weight_of[part[0]] > 0]
    pool = {course_id for _, scores, _ in parts for course_id in scores}
    # The reason is the model for which a course stands out most from that model's other
    # candidates (in standard deviations, so models on different spreads compare): a course
    # of ordinary popularity that is very similar to the learner's is there for that.
    means, spreads = {}, {}
    for source, scores, floor in parts:
        values = [scores.get(c, floor) for c in pool]
        means[source] = sum(values) / len(values)
        variance = sum((v - means[source]) ** 2 for v in values) / len(values)
        spreads[source] = max(variance**0.5, 1e-9)
    totals: dict[str, float] = {}
    best: dict[str, str] = {}
    for course_id in pool:
        total, top_lift = 0.0, float("-inf")
        for source, scores, floor in parts:
            score = scores.get(course_id, floor)
            total += weight_of[source] * score
            lift = (score - means[source]) / spreads[source]
            if lift > top_lift:
                top_lift, best[course_id] = lift, source
        totals[course_id] = total
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [
        Ranked(course_id, score, _reason(best[course_id], candidates))
        for course_id, score in ranked
    ]


def _reason(source: str, candidates: Candidates) -> ReasonCode:
    if source == "als":
        return ReasonCode.learners_like_you
    if source == "content":
        return ReasonCode.similar_to_taken if candidates.history else ReasonCode.matches_interests
    return ReasonCode.popular


def own_subjects(order: list[str], nearest: list[str], limit: int, slots: int) -> list[str]:
    """The first `limit` of `order`, with at least `slots` of them among the learner's
    `2 * slots` nearest courses by content: if the blend left fewer there (popularity outweighs
    a subject few learners take), the best-ranked of those take the last places. A learner's
    own subjects then always show in their list; the blend still orders the rest. (Nearest
    means the very nearest: the tenth nearest of a learner with a small subject is already
    another subject.)"""
    top = order[:limit]
    close = set(nearest[: 2 * slots])
    need = slots - sum(1 for course_id in top if course_id in close)
    extra = [course_id for course_id in order[limit:] if course_id in close][: max(0, need)]
    if not extra:
        return top
    # The lowest-ranked of the others make room; a nearest course already in stays.
    others = [course_id for course_id in top if course_id not in close]
    dropped = set(others[len(others) - len(extra) :])
    return [course_id for course_id in top if course_id not in dropped] + extra


def fold_in(
    gram: np.ndarray, item_factors: np.ndarray, weights: np.ndarray, settings: Settings
) -> np.ndarray:
    """A learner's ALS factors given the model's item factors, as implicit's own solve computes
    them: (YᵀY + Yᵀ(Cu - I)Y + λI) x = Yᵀ Cu p(u), with confidence Cu = alpha * weight."""
    confidence = settings.als_alpha * weights
    a = gram + settings.als_regularization * np.eye(gram.shape[0])
    a += (item_factors.T * (confidence - 1.0)) @ item_factors
    b = item_factors.T @ confidence
    return np.asarray(np.linalg.solve(a, b))


def blend_weights(found: Candidates, settings: Settings) -> BlendWeights:
    """The blend a learner is served: interests at cold start; popularity for the history
    lengths where the blend measured no better (`rec_popular_histories`); else the settings'."""
    if found.strategy is Strategy.interests:
        return BlendWeights(1.0, 0.0, settings.interests_blend_popular)
    if found.strategy is Strategy.hybrid and len(found.seen) in settings.rec_popular_histories:
        return BlendWeights(0.0, 0.0, 1.0)
    return BlendWeights.from_settings(settings)


class Vectors:
    """Vectors that never change under their key, kept so a read need not fetch them again:
    course embeddings by (id, content hash: the text embedded, one model per process) and ALS
    item factors by (model version, id). A hit is exactly what Milvus holds for that key, so
    answers depend on the data alone, as without it. Bounded: least recently used go first."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str | int, str], np.ndarray] = OrderedDict()

    def get(self, key: tuple[str | int, str]) -> np.ndarray | None:
        vector = self._items.get(key)
        if vector is not None:
            self._items.move_to_end(key)
        return vector

    def put(self, key: tuple[str | int, str], vector: np.ndarray) -> None:
        self._items[key] = vector
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


@dataclass
class _Memo:
    """What reads computed from the rows as they were at one change count (`ReadState`):
    popularity by filters and window, courses' learners by window, and which text Milvus holds
    the embedding of (the hash; None: not indexed at its current version, read from Milvus).
    The same count means the same rows, so these are the answers the queries would give; a
    write raises the count, and the next read starts a new memo. Filled as reads ask."""

    changes: int
    trending: dict[tuple[str, datetime], list[tuple[str, int]]] = field(default_factory=dict)
    learners: dict[datetime, dict[str, int]] = field(default_factory=dict)
    hashes: dict[str, str | None] = field(default_factory=dict)
    # Course rows as read (None: no such course), up to ROW_MEMO of them.
    rows: dict[str, Course | None] = field(default_factory=dict)


ROW_MEMO = 5000


class Recommender:
    def __init__(self, milvus: AsyncMilvusClient, settings: Settings, search: CourseSearch):
        self.milvus = milvus
        self.settings = settings
        self.search = search
        self.budget = VectorBudget(milvus, settings)
        self.similar = SimilarCourses(milvus, settings, self.budget)
        self.known = Vectors()
        self._memo = _Memo(-1)
        # The Gram matrix of the active model, by version: a version never changes.
        self._gram: tuple[int, np.ndarray] | None = None

    def _memo_for(self, state: ReadState) -> _Memo:
        if state.changes > self._memo.changes:
            self._memo = _Memo(state.changes)
        elif state.changes < self._memo.changes:
            # A read that began before the latest write another read has seen: its own.
            return _Memo(state.changes)
        return self._memo

    # --- building blocks ---------------------------------------------------------------------
    async def _gram_of(self, session: AsyncSession, active: ActiveModel) -> np.ndarray | None:
        if self._gram is None or self._gram[0] != active.version:
            raw = await ModelRepository(session).gram(active.version)
            if raw is None:
                return None
            gram = np.frombuffer(raw, dtype=np.float64).reshape(active.factors, active.factors)
            self._gram = (active.version, gram)
        return self._gram[1]

    async def _vectors(self, collection: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        expression = f"id in [{', '.join(literal(i) for i in ids)}]"
        rows = await self.budget.call(
            collection,
            lambda: self.milvus.query(
                collection, filter=expression, output_fields=["vector"], limit=len(ids)
            ),
        )
        return {row["id"]: np.asarray(row["vector"], dtype=np.float64) for row in rows}

    async def _course_vectors(
        self, session: AsyncSession, ids: Sequence[str], memo: _Memo | None = None
    ) -> dict[str, np.ndarray]:
        """Course embeddings: from `known` where PostgreSQL says Milvus holds the embedding of
        the same text, else from Milvus (and then kept under the hash Milvus reports)."""
        if not ids:
            return {}
        hashes = memo.hashes if memo is not None else {}
        unknown = [course_id for course_id in ids if course_id not in hashes]
        if unknown:
            fetched = await CourseRepository(session).indexed_hashes(unknown)
            for course_id in unknown:
                hashes[course_id] = fetched.get(course_id)
        found: dict[str, np.ndarray] = {}
        missing = []
        for course_id in ids:
            content_hash = hashes.get(course_id)
            vector = self.known.get((course_id, content_hash)) if content_hash else None
            if vector is None:
                missing.append(course_id)
            else:
                found[course_id] = vector
        if missing:
            collection = self.settings.milvus_collection
            expression = f"id in [{', '.join(literal(i) for i in missing)}]"
            rows = await self.budget.call(
                collection,
                lambda: self.milvus.query(
                    collection,
                    filter=expression,
                    output_fields=["vector", "content_hash"],
                    limit=len(missing),
                ),
            )
            for row in rows:
                vector = np.asarray(row["vector"], dtype=np.float64)
                self.known.put((row["id"], row["content_hash"]), vector)
                found[row["id"]] = vector
        return found

    async def _item_factors(self, active: ActiveModel, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The active model's item factors of these courses (a version never changes, so a
        course it has no factors for, one nobody had taken when it was trained, is noted as
        such: an empty vector)."""
        found: dict[str, np.ndarray] = {}
        missing = []
        for course_id in ids:
            vector = self.known.get((active.version, course_id))
            if vector is None:
                missing.append(course_id)
            elif vector.size:
                found[course_id] = vector
        fetched = await self._vectors(active.collection, missing)
        for course_id in missing:
            self.known.put((active.version, course_id), fetched.get(course_id, _NO_FACTORS))
        return found | fetched

    async def _nearest(
        self,
        collection: str,
        vector: np.ndarray,
        expression: str,
        limit: int,
        vectors: dict[str, np.ndarray] | None = None,
    ) -> dict[str, float]:
        """The nearest courses and their scores; their vectors too, into `vectors` if given."""
        fields = ["vector"] if vectors is not None else ["version"]
        kwargs: dict[str, Any] = {"limit": limit, "output_fields": fields}
        if expression:
            kwargs["filter"] = expression
        hits = await self.budget.call(
            collection,
            lambda: self.milvus.search(collection, data=[vector.tolist()], **kwargs),
        )
        if vectors is not None:
            for hit in hits[0]:
                vectors[hit["id"]] = np.asarray(hit["entity"]["vector"], dtype=np.float64)
        return {hit["id"]: float(hit["distance"]) for hit in hits[0]}

    async def popular(
        self, session: AsyncSession, filters: CourseFilters, window: timedelta
    ) -> list[tuple[str, int]]:
        """The most popular live courses within a window ending now."""
        since = datetime.now(UTC) - window
        return await PopularityRepository(session).trending(
            filters, since=since, limit=POPULAR_POOL
        )

    async def _popular(
        self, session: AsyncSession, memo: _Memo, filters: CourseFilters, since: datetime
    ) -> tuple[list[tuple[str, int]], bool]:
        """The most popular live courses within the filters, and whether that is all of them
        with any learner (then a course outside has none)."""
        key = (filters.model_dump_json(), since)
        trending = memo.trending.get(key)
        if trending is None:
            found = await PopularityRepository(session).trending(
                filters, since=since, limit=POPULAR_POOL
            )
            trending = memo.trending[key] = found
            while len(memo.trending) > 64:  # one entry per filter combination asked
                del memo.trending[next(iter(memo.trending))]
        return trending, len(trending) < POPULAR_POOL

    async def _learners_of(
        self, session: AsyncSession, memo: _Memo, ids: Sequence[str], since: datetime
    ) -> dict[str, int]:
        counts = memo.learners.setdefault(since, {})
        unknown = [course_id for course_id in ids if course_id not in counts]
        if unknown:
            fetched = await PopularityRepository(session).learners_of(unknown, since=since)
            for course_id in unknown:
                counts[course_id] = fetched.get(course_id, 0)
        return {course_id: counts[course_id] for course_id in ids}

    # --- candidates ----------------------------------------------------------------------------
    async def candidates(
        self, session: AsyncSession, learner_id: str, filters: CourseFilters
    ) -> Candidates:
        """Every model's candidates, each scored by every model, from the data alone: no cache,
        and no clock (recency and the popularity window end at the newest interaction)."""
        settings = self.settings
        pool = settings.rec_candidates
        repo = LearnerRepository(session)
        state = await read_state(session)
        memo = self._memo_for(state)
        learner, rows = await repo.with_interactions(learner_id)
        as_of = state.newest or datetime.now(UTC)
        history = {
            course_id: weight
            for course_id, weight in aggregate(
                settings, ((r.course_id, r.type, r.value, r.occurred_at) for r in rows), as_of
            ).items()
            if weight > 0
        }
        seen = {r.course_id for r in rows if r.type in TAKEN_TYPES}
        interests = (learner.interests or "").strip() if learner is not None else ""
        if history:
            strategy = Strategy.hybrid
        elif interests:
            strategy = Strategy.interests
        else:
            strategy = Strategy.popular
        found = Candidates(
            strategy=strategy, learner=learner, seen=seen, history=history, memo=memo
        )

        since = as_of - timedelta(days=settings.popular_window_days)
        trending, complete = await self._popular(session, memo, filters, since)
        counts = {course_id: count for course_id, count in trending if course_id not in seen}
        found.popular = {
            course_id: math.log1p(count) for course_id, count in list(counts.items())[:pool]
        }
        if strategy is Strategy.popular:
            return found

        reason = await self.budget.run(
            "recommendations",
            lambda: self._vector_candidates(session, found, filters, state, interests),
        )
        if reason is not None:
            # Popularity within the filters, the learner's courses excluded: what PostgreSQL
            # alone can answer, and said so.
            return Candidates(
                strategy=Strategy.popular,
                learner=learner,
                seen=seen,
                history=history,
                popular=found.popular,
                memo=memo,
                degraded=["semantic"],
            )
        everyone = set(found.content) | set(found.popular) | set(found.als)
        # Outside a complete popular list a course has no learners; else count it (once).
        outside = [] if complete else sorted(everyone - counts.keys() - seen)
        counts.update(await self._learners_of(session, memo, outside, since))
        found.popular = {
            course_id: math.log1p(counts.get(course_id, 0))
            for course_id in everyone
            if course_id not in seen
        }
        return found

    async def _vector_candidates(
        self,
        session: AsyncSession,
        found: Candidates,
        filters: CourseFilters,
        state: ReadState,
        interests: str,
    ) -> None:
        """Content and collaborative candidates (Milvus), and every candidate's similarity."""
        settings = self.settings
        pool = settings.rec_candidates
        history, seen, memo = found.history, found.seen, found.memo
        expression = milvus_expression(filters)
        if seen:
            exclusion = f"id not in [{', '.join(literal(i) for i in sorted(seen))}]"
            expression = f"{expression} and {exclusion}" if expression else exclusion

        # Content: the learner's courses, weighted, plus their interests.
        collection = settings.milvus_collection
        found.history_vectors = await self._course_vectors(session, sorted(history), memo)
        vector = np.zeros(settings.embedding_dim)
        for course_id, course_vector in found.history_vectors.items():
            vector += history[course_id] * course_vector
        history_norm = float(np.linalg.norm(vector))
        if history_norm > 0:
            vector /= history_norm
        if interests and settings.interests_weight > 0:
            vector += settings.interests_weight * np.asarray(
                await self.search.encode_query(interests)
            )
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            found.content = await self._nearest(collection, vector, expression, pool)
            found.nearest = list(found.content)

        # Collaborative: fold the learner into the active model.
        active = state.model if history else None
        gram = await self._gram_of(session, active) if active is not None else None
        if active is not None and gram is not None:
            found.model_version = active.version
            known = await self._item_factors(active, sorted(history))
            if known:
                ids = sorted(known)
                factors = np.stack([known[i] for i in ids])
                weights = np.asarray([history[i] for i in ids])
                user = fold_in(gram, factors, weights, settings)
                found.als = await self._nearest(active.collection, user, expression, pool)

        # Every candidate scored by content and popularity themselves, not by a stand-in: a
        # popular course outside the nearest ones has its own similarity, a similar course
        # outside the most popular its own popularity (a floor of 0 there made the blend all
        # but ignore any course below the top `rec_candidates` popular ones).
        everyone = set(found.content) | set(found.popular) | set(found.als)
        if norm > 0:
            found.vectors.update(await self._course_vectors(session, sorted(everyone), memo))
            for course_id in everyone - found.content.keys():
                if course_id in found.vectors:
                    found.content[course_id] = float(found.vectors[course_id] @ vector / norm)

    # --- the read ------------------------------------------------------------------------------
    async def recommend(
        self,
        session: AsyncSession,
        learner_id: str,
        filters: CourseFilters,
        *,
        limit: int,
        weights: BlendWeights | None = None,
    ) -> RecommendationPage:
        found = await self.candidates(session, learner_id, filters)
        if weights is None:
            weights = blend_weights(found, self.settings)
        ranked = blend(found, weights, len(found.popular) + len(found.content) + len(found.als))
        # The blend's head and the learner's nearest courses (which `own_subjects` may lift).
        nearest = set(found.nearest[: 2 * self.settings.rec_own_slots])
        shortlist = ranked[: limit * 2] + [r for r in ranked[limit * 2 :] if r.course_id in nearest]
        rows = await self._rows(
            session, found.memo, [r.course_id for r in shortlist] + sorted(found.history_vectors)
        )
        learner = found.learner
        kept: list[tuple[Ranked, Course, float]] = []
        for item in shortlist:
            row = rows.get(item.course_id)
            if row is None or row.deleted_at is not None or not matches(filters, row):
                continue
            score = item.score
            # The profile's preferences nudge the order; they do not filter.
            if learner is not None and learner.level and row.level == learner.level:
                score += PREFERENCE_BOOST
            if learner is not None and learner.language and row.language == learner.language:
                score += PREFERENCE_BOOST
            kept.append((item, row, score))
        kept.sort(key=lambda entry: (-entry[2], entry[0].course_id))
        by_id = {entry[0].course_id: entry for entry in kept}
        order = [entry[0].course_id for entry in kept]
        chosen = own_subjects(order, found.nearest, limit, self.settings.rec_own_slots)
        kept = []
        for course_id in chosen:
            item, row, score = by_id[course_id]
            if course_id not in order[:limit]:
                # There for the learner's own courses, whatever model ranked it.
                reason = _reason("content", found)
                item = Ranked(course_id, item.score, reason)
            kept.append((item, row, score))
        because = await self._because(
            session, found, [e[0].course_id for e in kept if _similar(e[0])]
        )
        items = []
        for item, row, score in kept:
            source = because.get(item.course_id)
            source_row = rows.get(source) if source is not None else None
            items.append(
                RecommendedCourse(
                    **course_out(row).model_dump(),
                    score=round(score, 6),
                    reason_code=item.reason,
                    reason=_reason_text(item.reason, source_row),
                    because_of=source if source_row is not None else None,
                )
            )
        return RecommendationPage(
            items=items,
            strategy=found.strategy,
            model_version=found.model_version,
            degraded=found.degraded,
        )

    async def _rows(
        self, session: AsyncSession, memo: _Memo | None, ids: Sequence[str]
    ) -> dict[str, Course]:
        """Course rows by id, tombstones included (a row is the same under the same count)."""
        known = memo.rows if memo is not None else {}
        unknown = [course_id for course_id in dict.fromkeys(ids) if course_id not in known]
        fetched = await CourseRepository(session).get_many(unknown) if unknown else {}
        if len(known) < ROW_MEMO:
            known.update({course_id: fetched.get(course_id) for course_id in unknown})
        return {
            course_id: row
            for course_id in ids
            if (row := fetched.get(course_id) or known.get(course_id)) is not None
        }

    async def _because(
        self, session: AsyncSession, found: Candidates, ids: list[str]
    ) -> dict[str, str]:
        """For courses recommended as similar: which of the learner's courses is closest."""
        if not ids or not found.history_vectors:
            return {}
        vectors = {i: found.vectors[i] for i in ids if i in found.vectors}
        missing = [i for i in ids if i not in vectors]
        if missing:
            vectors.update(await self._course_vectors(session, missing))
        history_ids = sorted(found.history_vectors)
        history = np.stack([found.history_vectors[i] for i in history_ids])
        return {
            course_id: history_ids[int(np.argmax(history @ vector))]
            for course_id, vector in vectors.items()
        }


def _similar(item: Ranked) -> bool:
    return item.reason is ReasonCode.similar_to_taken


def _reason_text(reason: ReasonCode, source: Course | None) -> str:
    if reason is ReasonCode.similar_to_taken:
        return (
            f"Similar to “{source.title}”, from your history"
            if source
            else "Similar to your courses"
        )
    if reason is ReasonCode.learners_like_you:
        return "Learners with a history like yours took it"
    if reason is ReasonCode.matches_interests:
        return "Matches your interests"
    return "Popular with learners right now"
