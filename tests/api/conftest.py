"""Fixtures of the in-process API tests: one migrated database and one app per run, driven
in-process (tests/support/inprocess.py)."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from shared.settings import Settings
from tests.support.inprocess import InProcessApi, database_settings, migrated_database, running


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"  # one event loop for the session: the app's engine lives on it


@pytest.fixture(scope="session")
def api_settings() -> Iterator[Settings]:
    with migrated_database(database_settings()) as settings:
        yield settings


@pytest.fixture(scope="session")
async def inprocess(anyio_backend: str, api_settings: Settings) -> AsyncIterator[InProcessApi]:
    async with running(api_settings) as api:
        yield api


@pytest.fixture
async def admin(inprocess: InProcessApi) -> AsyncIterator[httpx.AsyncClient]:
    """A client with the run's admin key."""
    async with inprocess.client(inprocess.admin_key) as client:
        yield client
