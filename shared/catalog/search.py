"""Semantic search and similar courses: Milvus finds the vectors, PostgreSQL supplies the rows."""

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np
from pymilvus import AsyncMilvusClient

from shared.catalog.filters import CourseFilters, milvus_expression
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import ScoredCourse, course_out
from shared.embedding import Embedder
from shared.errors import CourseNotFound, CourseNotIndexed
from shared.milvus import literal, loaded_async


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


class CourseSearch:
    def __init__(self, milvus: AsyncMilvusClient, collection: str, embedder: Embedder) -> None:
        self.milvus = milvus
        self.collection = collection
        self.embedder = embedder
        self.cache = QueryCache()

    async def encode_query(self, text: str) -> list[float]:
        key = " ".join(text.split())
        vector = self.cache.get(key)
        if vector is None:
            encoded: np.ndarray = await anyio.to_thread.run_sync(self.embedder.encode, [key])
            vector = encoded[0].tolist()
            self.cache.put(key, vector)
        return vector

    async def _nearest(
        self, vector: list[float], expression: str, *, limit: int, offset: int
    ) -> list[tuple[str, float]]:
        kwargs: dict[str, Any] = {"limit": limit, "output_fields": ["version"]}
        if offset:
            kwargs["offset"] = offset
        if expression:
            kwargs["filter"] = expression
        hits = await loaded_async(
            self.milvus,
            self.collection,
            lambda: self.milvus.search(self.collection, data=[vector], **kwargs),
        )
        return [(hit["id"], float(hit["distance"])) for hit in hits[0]]

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

    async def search(
        self,
        repo: CourseRepository,
        query: str,
        filters: CourseFilters,
        *,
        limit: int,
        offset: int,
    ) -> tuple[list[ScoredCourse], bool]:
        """One page of results, and whether there may be more."""
        vector = await self.encode_query(query)
        hits = await self._nearest(vector, milvus_expression(filters), limit=limit, offset=offset)
        return await self._hydrate(repo, hits), len(hits) == limit

    async def similar(
        self, repo: CourseRepository, course_id: str, filters: CourseFilters, *, limit: int
    ) -> list[ScoredCourse]:
        if await repo.get_live(course_id) is None:
            raise CourseNotFound(course_id)
        found = await loaded_async(
            self.milvus,
            self.collection,
            lambda: self.milvus.query(
                self.collection, filter=f"id == {literal(course_id)}", output_fields=["vector"]
            ),
        )
        if not found:
            raise CourseNotIndexed(course_id)
        expression = milvus_expression(filters, exclude_id=course_id)
        hits = await self._nearest(list(found[0]["vector"]), expression, limit=limit, offset=0)
        return await self._hydrate(repo, hits)
