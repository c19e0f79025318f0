"""Course writes and reads through the app in-process, on the real PostgreSQL."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared.catalog.models import Course
from shared.db import transaction
from tests.support.catalog import course, unique_id
from tests.support.http import accept, assert_error
from tests.support.inprocess import InProcessApi

pytestmark = pytest.mark.anyio


async def test_an_invalid_course_answers_422_listing_every_problem(
    admin: httpx.AsyncClient, inprocess: InProcessApi
) -> None:
    before = len(inprocess.published.messages)
    body = course(unique_id(), title="", level="wizard", duration_hours=-1)
    response = await admin.post("/v1/courses", json=body)
    error = assert_error(response, 422, "validation_error")
    locations = {tuple(detail["loc"]) for detail in error["details"]}
    assert {("body", "title"), ("body", "level"), ("body", "duration_hours")} <= locations
    assert all(detail["code"] and detail["message"] for detail in error["details"])
    assert error["message"] == f"The request has {len(error['details'])} invalid value(s)."
    assert len(inprocess.published.messages) == before  # nothing queued


async def test_a_bad_query_parameter_is_located(admin: httpx.AsyncClient) -> None:
    error = assert_error(
        await admin.get("/v1/courses", params={"limit": 0}), 422, "validation_error"
    )
    assert [detail["loc"] for detail in error["details"]] == [["query", "limit"]]


async def test_a_write_is_recorded_before_the_202_and_published_once(
    admin: httpx.AsyncClient, inprocess: InProcessApi
) -> None:
    course_id = unique_id("api")
    response = await admin.post(
        "/v1/courses", json=course(course_id), headers={"X-Request-ID": "req-api-write"}
    )
    task_id = accept(response)
    async with inprocess.sessionmaker() as session:
        row = (
            await session.execute(
                text("SELECT type, status, payload FROM tasks WHERE id = :id"),
                {"id": uuid.UUID(task_id)},
            )
        ).one()
    assert (row.type, row.status) == ("course.upsert", "queued")
    assert [item["id"] for item in row.payload["items"]] == [course_id]
    published = [m for m in inprocess.published.messages if str(m[0]) == task_id]
    assert published == [(uuid.UUID(task_id), "course.upsert", "req-api-write")]

    task = (await admin.get(f"/v1/tasks/{task_id}")).json()
    assert task["task_id"] == task_id and task["status"] == "queued"
    assert task["type"] == "course.upsert" and task["counts"]["received"] == 1


async def test_an_unknown_task_is_404(admin: httpx.AsyncClient) -> None:
    assert_error(await admin.get(f"/v1/tasks/{uuid.uuid4()}"), 404, "task_not_found")


async def insert(inprocess: InProcessApi, provider: str, *ids: str) -> None:
    async with transaction(inprocess.sessionmaker) as session:
        for n, course_id in enumerate(ids):
            session.add(
                Course(
                    id=course_id,
                    title=f"Course {n}",
                    description="Rows written straight to PostgreSQL.",
                    provider=provider,
                    level="beginner",
                    skills=["testing"],
                    metadata_={},
                    version=n + 1,
                    content_hash="0" * 64,
                    index_state="indexed",
                    indexed_version=n + 1,
                )
            )


async def test_courses_are_read_and_listed_from_postgresql(
    admin: httpx.AsyncClient, inprocess: InProcessApi
) -> None:
    provider = f"Provider {uuid.uuid4().hex[:8]}"
    ids = sorted(unique_id("row") for _ in range(3))
    await insert(inprocess, provider, *ids)

    for _ in range(2):  # the route, then the cache before routing: the same answer
        one = await admin.get(f"/v1/courses/{ids[0]}")
        assert one.status_code == 200, one.text
        got: dict[str, Any] = one.json()
        assert (got["id"], got["provider"], got["version"]) == (ids[0], provider, 1)

    first = (await admin.get("/v1/courses", params={"provider": provider, "limit": 2})).json()
    assert [item["id"] for item in first["items"]] == ids[:2] and first["next_cursor"]
    rest = await admin.get(
        "/v1/courses", params={"provider": provider, "limit": 2, "cursor": first["next_cursor"]}
    )
    assert [item["id"] for item in rest.json()["items"]] == ids[2:]
    assert rest.json()["next_cursor"] is None

    assert_error(await admin.get(f"/v1/courses/{unique_id('none')}"), 404, "course_not_found")


async def test_interactions_retried_with_their_key_return_the_first_task(
    admin: httpx.AsyncClient,
) -> None:
    """Without `occurred_at` (it defaults to the time of acceptance) a retry is the same
    request: the original task, not 409 idempotency_key_reused."""
    body = [{"user_id": unique_id("learner"), "course_id": unique_id(), "type": "view"}]
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = accept(await admin.post("/v1/interactions", json=body, headers=headers))
    again = accept(await admin.post("/v1/interactions", json=body, headers=headers))
    assert again == first


async def test_a_satisfied_token_is_answered_from_the_cache_and_no_other_is(
    admin: httpx.AsyncClient, inprocess: InProcessApi
) -> None:
    """A by-id read with a token this process saw satisfied skips routing (the cached answer
    is at least that version); a foreign token is still refused, a pending one still waited
    for, and a newer version than the cached answer still reads the row."""
    from api.fast_reads import cached_answer
    from shared.ledger.consistency import make_token
    from shared.ledger.repository import TaskRepository

    course_id = unique_id("token")
    await insert(inprocess, "Token provider", course_id)
    key = inprocess.app.state.settings.consistency_token_key.get_secret_value().encode()
    async with transaction(inprocess.sessionmaker) as session:
        repo = TaskRepository(session)
        finished = await repo.create(type="course.upsert", payload={"items": []}, received=1)
        pending = await repo.create(type="course.upsert", payload={"items": []}, received=1)
        await repo.fail(finished.id, "test row")
        # The course as that finished write left it.
        await session.execute(
            text("UPDATE courses SET version = :v WHERE id = :id"),
            {"v": finished.seq, "id": course_id},
        )

    def fast(token: str) -> bytes | None:
        return cached_answer(
            {
                "type": "http",
                "method": "GET",
                "path": f"/v1/courses/{course_id}",
                "query_string": f"consistency={token}".encode(),
                "headers": [(b"authorization", f"Bearer {inprocess.admin_key}".encode())],
                "app": inprocess.app,
                "client": ("192.0.2.1", 50000),
            }
        )

    done = make_token(key, finished.seq)
    assert fast(done) is None  # not seen yet: the route waits for it
    first = await admin.get(f"/v1/courses/{course_id}", params={"consistency": done})
    assert first.status_code == 200, first.text
    assert fast(done) == first.content  # seen satisfied, cached at its version: no routing
    second = await admin.get(f"/v1/courses/{course_id}", params={"consistency": done})
    assert second.content == first.content

    assert fast(make_token(b"another deployment", 1)) is None
    foreign = await admin.get(
        f"/v1/courses/{course_id}", params={"consistency": make_token(b"another", 1)}
    )
    assert assert_error(foreign, 422, "validation_error")["details"][0]["code"] == "foreign_token"

    waiting = make_token(key, pending.seq)
    assert fast(waiting) is None
    timed_out = await admin.get(
        f"/v1/courses/{course_id}", params={"consistency": waiting, "consistency_wait": 0.2}
    )
    assert_error(timed_out, 503, "consistency_timeout")
    async with transaction(inprocess.sessionmaker) as session:
        await TaskRepository(session).fail(pending.id, "test row")
    # Satisfied now, but newer than the cached answer's version: the route reads the row.
    assert (await admin.get(f"/v1/courses/{course_id}", params={"consistency": waiting})).is_success
    assert fast(waiting) is None


async def test_a_finished_task_satisfies_its_token_without_a_query(
    inprocess: InProcessApi,
) -> None:
    """Each process hears tasks finish (migration 0012's notification, at commit): a token's
    first read then needs no ledger look-up; a task still running is not heard of."""
    import asyncio

    from shared.ledger.consistency import ConsistencyWaiter
    from shared.ledger.repository import TaskRepository

    waiter: ConsistencyWaiter = inprocess.app.state.consistency
    async with transaction(inprocess.sessionmaker) as session:
        repo = TaskRepository(session)
        done = await repo.create(type="course.upsert", payload={"items": []}, received=1)
        running = await repo.create(type="course.upsert", payload={"items": []}, received=1)
        await repo.claim(running.id)  # processing: not finished
    assert not waiter.known_satisfied(done.seq)
    async with transaction(inprocess.sessionmaker) as session:
        await TaskRepository(session).fail(done.id, "test row")
    for _ in range(100):  # delivered at commit, read by the listener's connection
        if waiter.known_satisfied(done.seq):
            break
        await asyncio.sleep(0.02)
    assert waiter.known_satisfied(done.seq)
    assert not waiter.known_satisfied(running.seq)
    async with transaction(inprocess.sessionmaker) as session:
        await TaskRepository(session).fail(running.id, "test row")
