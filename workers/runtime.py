"""Per-process resources for workers: one event loop, one connection pool, one Milvus client and
one model per worker child, created after fork (worker_process_init) and never at import."""

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pymilvus import MilvusClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.catalog.indexing import CourseIndexer
from shared.db import create_engine, create_sessionmaker
from shared.embedding import Embedder, get_embedder
from shared.milvus import connect, ensure_collection
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class WorkerRuntime:
    settings: Settings
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    milvus: MilvusClient
    embedder: Embedder
    indexer: CourseIndexer

    @classmethod
    def start(cls, settings: Settings) -> "WorkerRuntime":
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        milvus = connect(settings)
        ensure_collection(milvus, settings.milvus_collection, settings.embedding_dim)
        embedder = get_embedder(settings)
        indexer = CourseIndexer(sessionmaker, milvus, settings.milvus_collection, embedder)
        return cls(settings, loop, engine, sessionmaker, milvus, embedder, indexer)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.milvus.close()
        self.loop.close()


_runtime: WorkerRuntime | None = None


def init_runtime(*, warm_model: bool = True) -> WorkerRuntime:
    global _runtime
    if _runtime is None:
        _runtime = WorkerRuntime.start(get_settings())
        if warm_model:
            _runtime.embedder.load()
            import torch

            log.info(
                "model loaded (%s backend); torch uses %d thread(s)",
                _runtime.embedder.backend,
                torch.get_num_threads(),
            )
        log.info("worker runtime ready")
    return _runtime


def runtime() -> WorkerRuntime:
    """The child's runtime (started lazily under pools that never fire worker_process_init)."""
    return _runtime or init_runtime()


def close_runtime() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None
