"""The API's database connections: one PostgreSQL has ended is replaced before a request uses it."""

import asyncio

import httpx
import pytest

from shared.catalog.cache import APPLICATION_NAME
from shared.settings import Settings
from tests.support.stack import pg

pytestmark = pytest.mark.anyio


async def test_a_read_after_postgresql_ended_the_apis_connections_is_answered(
    admin: httpx.AsyncClient, api_settings: Settings
) -> None:
    assert (await admin.get("/v1/courses")).status_code == 200  # a pooled connection
    database = api_settings.database_url.rsplit("/", 1)[1]
    # As a restart or `pg_terminate_backend` would: the pool's connections to this run's
    # database. (The listeners reconnect by themselves: tests/integration/test_course_cache.py;
    # the tests after this one need them.)
    await pg(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND application_name <> '{APPLICATION_NAME}' "
        "AND pid <> pg_backend_pid()"
    )
    await asyncio.sleep(0.5)  # the server's goodbye reaches the driver
    for _ in range(3):  # as many requests as connections were pooled, each answered
        response = await admin.get("/v1/courses")
        assert response.status_code == 200, response.text
