"""Growing a benchmark catalogue to N courses without embedding N texts.

Embedding 50,000 course texts would take this machine longer than the benchmark itself, and
search latency depends on how many vectors Milvus scans and how many rows PostgreSQL holds, not
on where the vectors came from. So the extra courses are copies of real ones ("… (edition k)")
written through the service's own write and indexing code (`apply_upserts`, `CourseIndexer`),
with one substitution: their vector is the original course's vector plus a little noise,
re-normalised, instead of a model call. Only the benchmark uses this."""

import asyncio
from typing import Any

import numpy as np

from shared.catalog.indexing import CourseIndexer
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import CourseIn, embedding_text
from shared.catalog.writes import apply_upserts, chunked
from shared.db import create_engine, create_sessionmaker, transaction
from shared.milvus import connect
from shared.settings import Settings


class NoisyCopies:
    """Stands in for the model: the vector of each text is given in advance."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors
        self.backend = "copies"

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[text] for text in texts]).astype(np.float32)


def copies(
    courses: list[dict[str, Any]], vectors: dict[str, list[float]], target: int, seed: int = 11
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    originals = [c for c in courses if c["id"] in vectors]
    made: list[dict[str, Any]] = []
    texts: dict[str, np.ndarray] = {}
    edition = 0
    while len(originals) + len(made) < target:
        edition += 1
        for course in originals:
            if len(originals) + len(made) >= target:
                break
            copy = {
                **course,
                "id": f"{course['id'][:180]}--e{edition}",
                "title": f"{course['title']} (edition {edition})"[:300],
            }
            vector = np.asarray(vectors[course["id"]]) + rng.normal(0, 0.02, 384)
            texts[embedding_text(CourseIn.model_validate(copy).to_record())] = (
                vector / np.linalg.norm(vector)
            )
            made.append(copy)
    return made, texts


async def _grow(settings: Settings, courses: list[dict[str, Any]], target: int) -> int:
    milvus = connect(settings)
    collection = settings.milvus_collection
    ids = [c["id"] for c in courses]
    known: dict[str, list[float]] = {}
    for chunk in chunked(ids, 1000):
        expression = "id in [" + ", ".join(f'"{i}"' for i in chunk) + "]"
        rows = milvus.query(
            collection, filter=expression, output_fields=["vector"], limit=len(chunk)
        )
        for row in rows:
            known[row["id"]] = row["vector"]
    made, texts = copies(courses, known, target)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    indexer = CourseIndexer(sessionmaker, milvus, collection, NoisyCopies(texts))  # type: ignore[arg-type]
    try:
        items = [(i, CourseIn.model_validate(course)) for i, course in enumerate(made)]
        for number, chunk in enumerate(chunked(items, 2000)):
            async with transaction(sessionmaker) as session:
                outcome = await apply_upserts(CourseRepository(session), chunk, number + 10)
            await indexer.sync(outcome.touched)
    finally:
        milvus.close()
        await engine.dispose()
    return len(made)


def grow(settings: Settings, courses: list[dict[str, Any]], target: int) -> int:
    """Add copies of `courses` until the catalogue holds `target` courses; returns how many."""
    return asyncio.run(_grow(settings, courses, target))
