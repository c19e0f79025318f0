"""The FastAPI application: engines and clients are created per process, in the lifespan."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from pymilvus import AsyncMilvusClient
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import KeyCache
from api.errors import install_error_handlers
from api.fast_reads import CourseByIdFastPath
from api.limits import BodySizeLimit
from api.observability import ObservabilityMiddleware
from api.publisher import ConfirmedPublisher
from api.routes import (
    courses,
    health,
    keys,
    learners,
    metrics,
    recommendations,
    search,
    suggest,
    tasks,
    webhooks,
)
from api.write_path import WriteDispatcher
from shared.access.service import RateLimiter
from shared.catalog.cache import CachedCourses, CourseCache, listen
from shared.catalog.search import CourseSearch
from shared.db import create_engine, create_sessionmaker
from shared.embedding import get_embedder
from shared.ledger.consistency import FINISHED_CHANNEL, ConsistencyWaiter
from shared.ledger.repository import LedgerInserts
from shared.liveness import Heartbeat
from shared.logging import configure_logging
from shared.messaging import build_celery
from shared.metrics import mark_process_dead
from shared.milvus import client_kwargs
from shared.recommendations.service import Recommender
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def database_state(app: FastAPI) -> AsyncIterator[AsyncEngine]:
    """What the routes need of PostgreSQL, on `app.state`: engines and sessions, the key cache,
    the rate limiter, the course cache and its listener. Yields the primary's engine.

    Apart from the broker, Milvus and the model, so the in-process API tests (tests/api) build
    exactly this and override the rest."""
    settings: Settings = app.state.settings
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    read_engine = (
        create_engine(settings, settings.database_read_url) if settings.database_read_url else None
    )
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.autocommit_sessionmaker = create_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    app.state.read_sessionmaker = create_sessionmaker(read_engine) if read_engine else sessionmaker
    app.state.key_cache = KeyCache(settings.api_key_cache_s)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_sync_s)
    # Reads from a replica may lag the notifications the primary sends: no cache with one.
    cache = CourseCache(
        settings.course_cache_ttl_s if not settings.database_read_url else 0,
        settings.course_cache_max_items,
    )
    app.state.cached_courses = CachedCourses(cache, app.state.read_sessionmaker)
    # Tokens are checked where the reads read: the replica, when there is one.
    app.state.consistency = ConsistencyWaiter(app.state.read_sessionmaker)
    # Without a replica (else no cache, no listener), finished tasks satisfy tokens as heard.
    listener = (
        asyncio.create_task(
            listen(
                cache,
                settings.database_url,
                also={FINISHED_CHANNEL: app.state.consistency.on_finished},
            )
        )
        if cache.ttl_s
        else None
    )
    try:
        yield engine
    finally:
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await engine.dispose()
        if read_engine is not None:
            await read_engine.dispose()


def write_dispatcher(
    app: FastAPI, engine: AsyncEngine, publisher: ConfirmedPublisher
) -> WriteDispatcher:
    """The write path on the app's database (after `database_state`), publishing with
    `publisher`."""
    return WriteDispatcher(
        app.state.sessionmaker, app.state.settings, LedgerInserts(engine), publisher
    )


async def liveness_heartbeat(settings: Settings, publisher: ConfirmedPublisher) -> None:
    """Touch this process's liveness file while its event loop runs and its publishing thread
    is not stuck in one round longer than every bounded wait of a round adds up to (connect,
    confirms, one retry). A process failing either is restarted by its supervisor."""
    heartbeat = Heartbeat(settings.liveness_dir, "api")
    bound = 4 * settings.publish_timeout_s + 2 * settings.broker_socket_timeout_s
    try:
        while True:
            stalled = publisher.stalled_for()
            if stalled <= bound:
                heartbeat.touch()
            else:
                log.error("the publishing thread is stuck (%.0f s in one round)", stalled)
            await asyncio.sleep(settings.liveness_interval_s)
    finally:
        heartbeat.remove()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with database_state(app) as engine:
        celery = build_celery(settings)
        milvus = AsyncMilvusClient(**client_kwargs(settings))
        embedder = get_embedder(settings)
        # Load the model before taking traffic, not on the first search.
        await anyio.to_thread.run_sync(embedder.load)
        app.state.celery = celery
        app.state.milvus = milvus
        publisher = ConfirmedPublisher(celery, settings.publish_timeout_s)
        publisher.start()
        app.state.dispatcher = write_dispatcher(app, engine, publisher)
        app.state.search = CourseSearch(
            milvus,
            settings.milvus_collection,
            embedder,
            candidates=settings.search_candidates,
            semantic_budget_s=settings.search_semantic_budget_s,
            breaker_cooldown_s=settings.search_breaker_cooldown_s,
            fusion=settings.search_fusion,
        )
        app.state.recommender = Recommender(milvus, settings, app.state.search)
        # The model and libraries loaded above are millions of long-lived objects; a full
        # garbage collection walking them all stalled requests for 100+ ms (measured p99 at
        # half load). Frozen, collections only look at what requests allocate.
        gc.collect()
        gc.freeze()
        heartbeat = asyncio.create_task(liveness_heartbeat(settings, publisher))
        log.info("api ready")
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await milvus.close()
            await anyio.to_thread.run_sync(publisher.stop)
            celery.close()
            mark_process_dead()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging()
    app = FastAPI(
        title="Coursewise",
        version="0.1.0",
        summary="Course catalog with semantic search. Writes are asynchronous (202 + task).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, settings=settings)
    app.add_middleware(CourseByIdFastPath)
    # Added last, so outermost: every response (413s included) carries the request id.
    app.add_middleware(ObservabilityMiddleware)
    # `recommendations` before `courses`: /v1/courses/popular is not a course id; `suggest`
    # before `search`, so /v1/search/suggest stays its own route whatever search adds.
    routers = (
        health,
        recommendations,
        courses,
        suggest,
        search,
        tasks,
        learners,
        keys,
        webhooks,
        metrics,
    )
    for module in routers:
        app.include_router(module.router)
    return app


app = create_app()
