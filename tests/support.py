"""In-process access to the stores, for tests that drive the worker's logic directly."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymilvus import MilvusClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.catalog.indexing import CourseIndexer
from shared.db import create_engine, create_sessionmaker
from shared.embedding import get_embedder
from shared.milvus import connect
from shared.settings import Settings


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
