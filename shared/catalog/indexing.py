"""Bringing Milvus in line with PostgreSQL for a set of courses.

The indexer never trusts what a message said: it reads the rows as they are now and makes
Milvus match them, so any number of tasks, in any order, converge on the same index. Embedding
happens outside any lock; the Milvus write and the `indexed` mark happen under the rows' locks,
so a concurrent newer write cannot be overwritten by an older vector.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pymilvus import MilvusClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.catalog.fields import course_record
from shared.catalog.models import Course
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import embedding_text
from shared.db import transaction
from shared.embedding import Embedder
from shared.metrics import observe_embedding
from shared.milvus import entity, literal, loaded

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    upserted: int = 0
    removed: int = 0
    embedded: int = 0
    reused: int = 0
    embed_seconds: float = 0.0
    milvus_seconds: float = 0.0


def _in_sync(row: Course) -> bool:
    return row.index_state == "indexed" and row.indexed_version == row.version


class CourseIndexer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        milvus: MilvusClient,
        collection: str,
        embedder: Embedder,
        flush_every: int = 500,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.milvus = milvus
        self.collection = collection
        self.embedder = embedder
        self.flush_every = flush_every
        self._unflushed = 0

    def _vectors_in_milvus(self, ids: Sequence[str]) -> dict[str, tuple[str, list[float]]]:
        if not ids:
            return {}
        expression = f"id in [{', '.join(literal(i) for i in ids)}]"
        rows = loaded(
            self.milvus,
            self.collection,
            lambda: self.milvus.query(
                self.collection,
                filter=expression,
                output_fields=["content_hash", "vector"],
                limit=len(ids),
            ),
        )
        return {row["id"]: (row["content_hash"], list(row["vector"])) for row in rows}

    def _embed(self, rows: Sequence[Course], report: IndexReport) -> dict[str, list[float]]:
        started = time.perf_counter()
        texts = [embedding_text(course_record(row)) for row in rows]
        vectors = self.embedder.encode(texts)
        seconds = time.perf_counter() - started
        observe_embedding(len(rows), seconds)
        report.embedded += len(rows)
        report.embed_seconds += seconds
        return {row.id: vector.tolist() for row, vector in zip(rows, vectors, strict=True)}

    async def sync(self, ids: Sequence[str]) -> IndexReport:
        report = IndexReport()
        ids = sorted(set(ids))
        async with self.sessionmaker() as session:
            snapshot = await CourseRepository(session).get_many(ids)
        live = [row for row in snapshot.values() if row.deleted_at is None and not _in_sync(row)]
        if not live and all(_in_sync(row) for row in snapshot.values()):
            return report

        # Reuse vectors whose text did not change; embed the rest, in one batch, without locks.
        started = time.perf_counter()
        existing = self._vectors_in_milvus([row.id for row in live])
        report.milvus_seconds += time.perf_counter() - started
        vectors: dict[str, list[float]] = {}
        hashes: dict[str, str] = {}
        to_embed = []
        for row in live:
            known = existing.get(row.id)
            if known is not None and known[0] == row.content_hash:
                vectors[row.id], hashes[row.id] = known[1], row.content_hash
                report.reused += 1
            else:
                to_embed.append(row)
        vectors.update(self._embed(to_embed, report))
        hashes.update({row.id: row.content_hash for row in to_embed})

        async with transaction(self.sessionmaker) as session:
            repo = CourseRepository(session)
            current = await repo.get_many(ids, lock=True)
            # A write that landed while we embedded may have changed a text: embed those again.
            changed = [
                row
                for row in current.values()
                if row.deleted_at is None and hashes.get(row.id) != row.content_hash
            ]
            if changed:
                vectors.update(self._embed(changed, report))
                hashes.update({row.id: row.content_hash for row in changed})
            entities = [
                entity(course_record(row), vectors[row.id], row.version, row.content_hash)
                for row in current.values()
                if row.deleted_at is None and not _in_sync(row)
            ]
            gone = [
                row.id
                for row in current.values()
                if row.deleted_at is not None and not _in_sync(row)
            ]
            started = time.perf_counter()
            if entities:
                loaded(
                    self.milvus,
                    self.collection,
                    lambda: self.milvus.upsert(self.collection, entities),
                )
            if gone:
                loaded(
                    self.milvus,
                    self.collection,
                    lambda: self.milvus.delete(self.collection, ids=gone),
                )
            report.milvus_seconds += time.perf_counter() - started
            await repo.mark_indexed(
                {row.id: row.version for row in current.values() if not _in_sync(row)}
            )
            report.upserted, report.removed = len(entities), len(gone)
        self._unflushed += len(entities) + len(gone)
        if self._unflushed >= self.flush_every:
            self.flush()
        return report

    def flush(self) -> None:
        """Seal what was written into indexed segments. Milvus Lite searches unsealed data by
        brute force: 128 ms a search at 3,500 courses before a flush, 7 ms after (measured);
        Milvus standalone seals by itself, where this is only earlier."""
        loaded(self.milvus, self.collection, lambda: self.milvus.flush(self.collection))
        self._unflushed = 0
