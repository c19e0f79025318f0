"""The API in-process, for tests/api: the real app (middleware, routes, error handlers) on this
run's own PostgreSQL database, driven through `httpx.ASGITransport`. No broker, Milvus or model:
the publisher is replaced by one that records what it was asked to publish, and search and
recommendations by stand-ins that fail loudly if a test reaches them.

ASGITransport does not run the app's lifespan; `running` builds what the routes read from
`app.state` with the lifespan's own `database_state`, and installs the dependency overrides."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import deps
from api.main import create_app, database_state, write_dispatcher
from shared.access.keys import Scope
from shared.access.service import create_key
from shared.db import transaction
from shared.prestart import migrate
from shared.settings import Settings
from tests.support.stack import PG_ADMIN_DSN, RUN_ID, pg


@dataclass
class CapturedPublishes:
    """Stands in for the broker publisher: every message the write path published."""

    messages: list[tuple[uuid.UUID, str, str | None]] = field(default_factory=list)

    async def publish(self, task_id: uuid.UUID, task_type: str, request_id: str | None) -> None:
        self.messages.append((task_id, task_type, request_id))


class NotInProcess:
    """Search and recommendations need Milvus and the model: tests/integration covers them."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{self.what} is not part of the in-process API tests")


@dataclass
class InProcessApi:
    app: FastAPI
    sessionmaker: async_sessionmaker[AsyncSession]
    published: CapturedPublishes
    admin_key: str

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        """A client sending `key` (None: no Authorization header)."""
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        transport = httpx.ASGITransport(app=self.app, client=("192.0.2.1", 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://api.test", headers=headers)

    async def new_key(self, scopes: list[str], **fields: Any) -> str:
        """A key made straight in the database (as `coursewise keys create` does)."""
        async with transaction(self.sessionmaker) as session:
            _, secret = await create_key(
                session,
                name=f"test-{uuid.uuid4().hex[:8]}",
                owner=fields.pop("owner", "tests"),
                scopes=[Scope(scope) for scope in scopes],
                **fields,
            )
        return secret


def database_settings(run_id: str = RUN_ID, **overrides: Any) -> Settings:
    pg_base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return Settings(database_url=f"{pg_base}/coursewise_api_{run_id}", **overrides)


@contextmanager
def migrated_database(settings: Settings) -> Iterator[Settings]:
    """The settings' database, created, migrated to head with alembic, dropped afterwards."""
    name = settings.database_url.rsplit("/", 1)[1]
    asyncio.run(pg(f'CREATE DATABASE "{name}"'))
    try:
        migrate(settings)
        yield settings
    finally:
        asyncio.run(pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[InProcessApi]:
    """The app with the state its routes need, and an admin key."""
    app = create_app(settings)
    published = CapturedPublishes()
    async with database_state(app) as engine:
        dispatcher = write_dispatcher(app, engine, published)  # type: ignore[arg-type]

        async def _dispatcher() -> Any:
            return dispatcher

        async def _search() -> Any:
            return NotInProcess("search")

        async def _recommender() -> Any:
            return NotInProcess("recommendations")

        app.dependency_overrides[deps._dispatcher] = _dispatcher
        app.dependency_overrides[deps._search] = _search
        app.dependency_overrides[deps._recommender] = _recommender
        api = InProcessApi(app, app.state.sessionmaker, published, "")
        api.admin_key = await api.new_key(["admin"], rate_limit_per_minute=1_000_000)
        yield api
