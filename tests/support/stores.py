"""In-process access to the stores, for tests that drive the worker's logic directly."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymilvus import MilvusClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.catalog.indexing import CourseIndexer
from shared.db import create_engine, create_sessionmaker
from shared.embedding import get_embedder
from shared.milvus import connect
from shared.settings import Settings, get_settings


@dataclass
class Stores:
    sessionmaker: async_sessionmaker[AsyncSession]
    milvus: MilvusClient
    collection: str
    indexer: CourseIndexer


@asynccontextmanager
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    engine = create_engine(settings)
    milvus = connect(settings)
    sessionmaker = create_sessionmaker(engine)
    collection = settings.milvus_collection
    indexer = CourseIndexer(sessionmaker, milvus, collection, get_embedder(settings))
    try:
        yield Stores(sessionmaker, milvus, collection, indexer)
    finally:
        milvus.close()
        await engine.dispose()


def run(test: Callable[[Any, MilvusClient, str], Awaitable[None]]) -> None:
    """`test((sessionmaker, indexer), milvus, collection)` on this run's settings."""

    async def main() -> None:
        async with stores(get_settings()) as s:
            await test((s.sessionmaker, s.indexer), s.milvus, s.collection)

    asyncio.run(main())
