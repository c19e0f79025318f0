"""Hybrid search (PostgreSQL full text and trigrams + Milvus vectors); similar courses are
shared/recommendations/similar.py.

A search takes the best keyword candidates from PostgreSQL and the nearest vectors from Milvus,
both under the same filters, and fuses them (shared/catalog/ranking.py). The results a client
can page through, and the facets count, are exactly that candidate set, as PostgreSQL has it
now. The semantic side has a time budget: past it, failing, or while its circuit breaker is
open, the answer comes from PostgreSQL alone and says `degraded: ["semantic"]`.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from pymilvus import AsyncMilvusClient
from sqlalchemy.ext.asyncio import AsyncSession

from shared.catalog.filters import CourseFilters, milvus_expression
from shared.catalog.keyword import KeywordHit, KeywordSearch
from shared.catalog.nearest import NearestBatcher
from shared.catalog.query_embedding import QueryBatcher
from shared.catalog.ranking import (
    Fusion,
    Ranked,
    SortField,
    SortKey,
    facet_counts,
    rank,
    sort_key,
)
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import (
    Explanation,
    FacetCount,
    ScoredCourse,
    SearchHit,
    course_out,
)
from shared.embedding import Embedder
from shared.metrics import SEARCH_DEGRADED
from shared.milvus import loaded_async

log = logging.getLogger(__name__)


class QueryCache:
    """Embeddings of recent queries: popular searches repeat, and encoding is the costly part."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._items: OrderedDict[str, list[float]] = OrderedDict()

    def get(self, text: str) -> list[float] | None:
        vector = self._items.get(text)
        if vector is not None:
            self._items.move_to_end(text)
        return vector

    def put(self, text: str, vector: list[float]) -> None:
        self._items[text] = vector
        if len(self._items) > self.size:
            self._items.popitem(last=False)


class CircuitBreaker:
    """After a failure the semantic side is skipped for `cooldown_s`; then one request tries
    it again (the others keep skipping while it does), and a success closes the breaker."""

    def __init__(self, cooldown_s: float, probe_s: float) -> None:
        self.cooldown_s = cooldown_s
        self.probe_s = probe_s
        self._closed = True
        self._retry_at = 0.0

    def allows(self) -> bool:
        if self._closed:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.probe_s  # this request probes; the others wait for it
        return True

    def failed(self) -> None:
        self._closed = False
        self._retry_at = time.monotonic() + self.cooldown_s

    def succeeded(self) -> None:
        self._closed = True


@dataclass(frozen=True)
class SearchOptions:
    semantic_ratio: float
    sort: SortField
    limit: int
    after: SortKey | None
    facets: Sequence[str]
    explain: bool


@dataclass
class SearchResult:
    items: list[SearchHit]
    next_key: SortKey | None
    facets: dict[str, list[FacetCount]] | None
    degraded: list[Literal["semantic"]]


class CourseSearch:
    def __init__(
        self,
        milvus: AsyncMilvusClient,
        collection: str,
        embedder: Embedder,
        *,
        candidates: int = 200,
        semantic_budget_s: float = 0.4,
        breaker_cooldown_s: float = 2.0,
        fusion: Fusion = "score",
    ) -> None:
        self.milvus = milvus
        self.collection = collection
        self.embedder = embedder
        self.cache = QueryCache()
        self.queries = QueryBatcher(embedder.encode, self.cache)
        self.vectors = NearestBatcher(self._search_many)
        self.candidates = candidates
        self.semantic_budget_s = semantic_budget_s
        self.fusion: Fusion = fusion
        self.breaker = CircuitBreaker(breaker_cooldown_s, probe_s=semantic_budget_s)

    async def encode_query(self, text: str) -> list[float]:
        """The query's embedding: cached, shared by concurrent searches for the same text and
        batched with other concurrent queries. A search that runs out of its time budget stops
        waiting, but the encoding still lands in the cache for the next one."""
        return await self.queries.embed(text)

    async def _search_many(
        self, vectors: list[list[float]], expression: str, limit: int
    ) -> list[list[tuple[str, float]]]:
        """One Milvus request for several query vectors (see shared/catalog/nearest.py)."""
        kwargs: dict[str, Any] = {
            "limit": limit,
            "output_fields": ["version"],
            "timeout": self.semantic_budget_s,  # Milvus's own, beside each caller's budget
        }
        if expression:
            kwargs["filter"] = expression
        hits = await loaded_async(
            self.milvus,
            self.collection,
            lambda: self.milvus.search(self.collection, data=vectors, **kwargs),
        )
        return [[(hit["id"], float(hit["distance"])) for hit in row] for row in hits]

    async def _semantic(
        self, query: str, filters: CourseFilters
    ) -> tuple[list[tuple[str, float]], str | None]:
        """The nearest courses, or why there are none (timeout, error, circuit_open)."""
        if not self.breaker.allows():
            SEARCH_DEGRADED.labels("circuit_open").inc()
            return [], "circuit_open"
        reason = "error"
        try:
            with anyio.fail_after(self.semantic_budget_s):
                vector = await self.encode_query(query)
                hits = await self.vectors.nearest(
                    vector, milvus_expression(filters), self.candidates
                )
        except TimeoutError:
            reason = "timeout"
            log.warning("semantic search past its %.2fs budget", self.semantic_budget_s)
        except Exception as exc:  # any failure of Milvus or the model: answer without them
            log.warning("semantic search failed: %r", exc)
        else:
            self.breaker.succeeded()
            return hits, None
        self.breaker.failed()
        SEARCH_DEGRADED.labels(reason).inc()
        return [], reason

    async def hybrid(
        self, session: AsyncSession, query: str, filters: CourseFilters, options: SearchOptions
    ) -> SearchResult:
        keyword = KeywordSearch(session)
        ratio = options.semantic_ratio
        semantic: list[tuple[str, float]] = []
        failure: str | None = None
        # Both sides at once. A plain task, not a task group: a PostgreSQL error must reach its
        # handler (503) as itself, not inside an exception group.
        pending = asyncio.create_task(self._semantic(query, filters)) if ratio > 0 else None
        keyword_hits: list[KeywordHit] = []
        try:
            prepared = await keyword.prepare(query, filters.language or "en")
            if ratio < 1:  # semantic only ranks the semantic candidates alone
                keyword_hits = await keyword.candidates(prepared, filters, limit=self.candidates)
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise
        if pending is not None:
            semantic, failure = await pending
        if failure is not None:
            if ratio >= 1:  # nothing to fall back on yet
                keyword_hits = await keyword.candidates(prepared, filters, limit=self.candidates)
            ratio = 0.0  # PostgreSQL alone
        keyword_list = [(hit.id, hit.score) for hit in keyword_hits] if ratio < 1 else []
        ids = list(dict.fromkeys([i for i, _ in keyword_list] + [i for i, _ in semantic]))
        candidates = await keyword.fields(ids, filters)
        ranked = rank(
            candidates,
            keyword_list,
            semantic,
            query=prepared.normalised,
            semantic_ratio=ratio,
            method=self.fusion,
        )
        keyed = sorted(((sort_key(item, options.sort), item) for item in ranked), key=_first)
        remaining = [pair for pair in keyed if options.after is None or pair[0] > options.after]
        page = remaining[: options.limit]
        next_key = page[-1][0] if len(remaining) > options.limit else None
        items = await self._hits(session, [item for _, item in page], query, options.explain)
        facets = None
        if options.facets:
            counts = facet_counts((item.candidate for item in ranked), options.facets)
            facets = {
                facet: [FacetCount(value=value, count=count) for value, count in values]
                for facet, values in counts.items()
            }
        degraded: list[Literal["semantic"]] = ["semantic"] if failure else []
        return SearchResult(items, next_key, facets, degraded)

    async def _hits(
        self, session: AsyncSession, page: list[Ranked], query: str, explain: bool
    ) -> list[SearchHit]:
        ids = [item.candidate.id for item in page]
        rows = await CourseRepository(session).get_many(ids)
        highlights = await KeywordSearch(session).highlights(ids, query)
        hits = []
        for item in page:
            row = rows.get(item.candidate.id)
            if row is None or row.deleted_at is not None:  # deleted since the candidates
                continue
            explanation = None
            if explain:
                explanation = Explanation(
                    keyword_rank=item.keyword_rank,
                    keyword_score=_rounded(item.keyword_score),
                    semantic_rank=item.semantic_rank,
                    semantic_score=_rounded(item.semantic_score),
                    fused_score=item.fused,
                    title_match=item.title_match,
                )
            hits.append(
                SearchHit(
                    **course_out(row).model_dump(),
                    score=round(item.score, 6),
                    highlight=highlights.get(row.id),
                    explain=explanation,
                )
            )
        return hits

    async def _hydrate(
        self, repo: CourseRepository, hits: Sequence[tuple[str, float]]
    ) -> list[ScoredCourse]:
        rows = await repo.get_many([course_id for course_id, _ in hits])
        results = []
        for course_id, score in hits:
            row = rows.get(course_id)
            if row is None or row.deleted_at is not None:  # deleted, index catching up
                continue
            results.append(ScoredCourse(**course_out(row).model_dump(), score=round(score, 6)))
        return results


def _first(pair: tuple[SortKey, Ranked]) -> SortKey:
    return pair[0]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
