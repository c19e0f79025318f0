"""Courses by id are cached in the API processes, and a cached course is never served after a
change: PostgreSQL's notifications drop it, whichever code wrote the row, and a lost listener
connection empties the cache until it is back."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx

from devstack.stack import LocalStack
from shared.catalog.cache import APPLICATION_NAME
from tests.support.http import accept, assert_error, wait_task
from tests.support.keys import new_key
from tests.support.metrics import scrape, value
from tests.support.stack import PG_ADMIN_DSN


def course(course_id: str, title: str) -> dict[str, Any]:
    return {"id": course_id, "title": title, "description": "A course about caching answers."}


def sql(database: str, statement: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(statement, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def listeners(database: str) -> int:
    rows = sql(
        database,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        database,
        APPLICATION_NAME,
    )
    return int(rows[0][0])


def titles(api: httpx.Client, course_id: str, reads: int = 6) -> set[str]:
    # Several reads: the two API processes each have their own cache.
    return {api.get(f"/v1/courses/{course_id}").json()["title"] for _ in range(reads)}


def test_a_written_change_is_served_at_once(api: httpx.Client) -> None:
    course_id = f"cache:{time.time_ns()}"
    wait_task(api, accept(api.post("/v1/courses", json=course(course_id, "First title"))))
    assert titles(api, course_id) == {"First title"}  # cached now, in both processes
    task = wait_task(
        api, accept(api.patch(f"/v1/courses/{course_id}", json={"title": "Second title"}))
    )
    assert task["status"] == "succeeded"
    assert titles(api, course_id) == {"Second title"}
    wait_task(api, accept(api.delete(f"/v1/courses/{course_id}")))
    assert api.get(f"/v1/courses/{course_id}").status_code == 404


def test_a_change_made_outside_the_service_is_served_at_once(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    database = stack_env["COURSEWISE_DATABASE_URL"].rsplit("/", 1)[1]
    course_id = f"cache:{time.time_ns()}"
    wait_task(api, accept(api.post("/v1/courses", json=course(course_id, "Before"))))
    eventually(lambda: listeners(database) >= 2)  # one per API process
    assert titles(api, course_id) == {"Before"}
    # An operator's fix in SQL: no task, no worker; the trigger still announces it.
    sql(database, "UPDATE courses SET title = 'Fixed by hand' WHERE id = $1", course_id)
    assert titles(api, course_id) == {"Fixed by hand"}


def test_losing_the_listener_never_serves_a_stale_course(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    database = stack_env["COURSEWISE_DATABASE_URL"].rsplit("/", 1)[1]
    course_id = f"cache:{time.time_ns()}"
    wait_task(api, accept(api.post("/v1/courses", json=course(course_id, "Cached"))))
    eventually(lambda: listeners(database) >= 2)
    assert titles(api, course_id) == {"Cached"}
    # Cut every listener connection, and change the row while they are down.
    sql(
        database,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = $1 AND application_name = $2",
        database,
        APPLICATION_NAME,
    )
    sql(database, "UPDATE courses SET title = 'Changed while deaf' WHERE id = $1", course_id)
    assert titles(api, course_id) == {"Changed while deaf"}
    # The listeners come back by themselves, and caching with them.
    eventually(lambda: listeners(database) >= 2)
    sql(database, "UPDATE courses SET title = 'Changed again' WHERE id = $1", course_id)
    assert titles(api, course_id) == {"Changed again"}


def test_cached_answers_are_the_routes_and_keep_its_checks(
    api: httpx.Client, stack: LocalStack
) -> None:
    """Cached courses are answered before routing (api/fast_reads.py): the same bytes and
    headers as the route, counted under the route in the metrics, and only for a caller the
    route would serve."""
    course_id = f"cache:fast:{time.time_ns()}"
    wait_task(api, accept(api.post("/v1/courses", json=course(course_id, "Fast title"))))
    count = "coursewise_http_request_duration_seconds_count"
    labels = {"method": "GET", "route": "/v1/courses/{course_id}", "status": "200"}
    before = value(scrape(f"{stack.api_url}/metrics"), count, **labels)
    # Fresh connections spread over both API processes: the first reads fill the caches.
    answers = [
        httpx.get(f"{stack.api_url}/v1/courses/{course_id}", headers=api.headers, timeout=10)
        for _ in range(12)
    ]
    shapes = {
        (a.status_code, a.content, a.headers["content-type"], a.headers["content-length"])
        for a in answers
    }
    assert len(shapes) == 1 and answers[0].json()["title"] == "Fast title"
    assert len({a.headers["x-request-id"] for a in answers}) == 12
    after = value(scrape(f"{stack.api_url}/metrics"), count, **labels)
    assert after - before == 12

    writer = new_key(api, ["write"])["key"]
    for token, status, code in [
        (f"Bearer {writer}", 403, "insufficient_scope"),
        ("Bearer cw_not-a-key", 401, "unauthenticated"),
        (f"Basic {writer}", 401, "unauthenticated"),
    ]:
        for _ in range(4):  # both processes, with the course cached in each
            response = httpx.get(
                f"{stack.api_url}/v1/courses/{course_id}",
                headers={"Authorization": token},
                timeout=10,
            )
            assert_error(response, status, code)
