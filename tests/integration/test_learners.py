"""Learner writes through the queue: profiles, interaction batches, and deletion."""

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests.support.http import accept, wait_task
from tests.support.learning import Community, build, interact


@pytest.fixture(scope="module")
def community(api: httpx.Client) -> Community:
    return build(api)


def test_a_bad_batch_lists_every_problem_and_queues_nothing(
    api: httpx.Client, community: Community
) -> None:
    course = community.ids("data")[0]
    before = api.get("/v1/tasks", params={"type": "interaction.batch", "limit": 1}).json()
    response = api.post(
        "/v1/interactions",
        json=[
            {"user_id": "ok", "course_id": course, "type": "rate"},
            {"user_id": "ok", "course_id": course, "type": "like"},
            {"user_id": "ok", "course_id": course, "type": "view", "value": 3},
            {"user_id": "bad id!", "course_id": course, "type": "view"},
            {"user_id": "ok", "course_id": course, "type": "rate", "value": 9},
            {"user_id": "ok", "course_id": course, "type": "view"},
        ],
    )
    assert response.status_code == 422, response.text
    locs = {tuple(detail["loc"]) for detail in response.json()["error"]["details"]}
    assert {
        ("body", 0, "value"),
        ("body", 1, "type"),
        ("body", 2, "value"),
        ("body", 3, "user_id"),
        ("body", 4, "value"),
    } <= locs
    assert not any(loc[:2] == ("body", 5) for loc in locs)
    after = api.get("/v1/tasks", params={"type": "interaction.batch", "limit": 1}).json()
    assert after["items"][0]["task_id"] == before["items"][0]["task_id"]

    too_many = [{"user_id": "ok", "course_id": course, "type": "view"}] * 1001
    response = api.post("/v1/interactions", json=too_many)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body"]


def test_interactions_create_the_learner_and_unknown_courses_are_item_errors(
    api: httpx.Client, community: Community
) -> None:
    learner = community.learner(f"new-{uuid.uuid4().hex[:6]}")
    assert api.get(f"/v1/users/{learner}").status_code == 404
    data = community.ids("data")
    task = interact(
        api,
        [
            {"user_id": learner, "course_id": data[0], "type": "enroll"},
            {"user_id": learner, "course_id": "no-such-course", "type": "view"},
            {"user_id": learner, "course_id": data[0], "type": "rate", "value": 5},
            {"user_id": learner, "course_id": data[1], "type": "view", "event_id": "e-1"},
            {"user_id": learner, "course_id": data[1], "type": "view", "event_id": "e-1"},
        ],
    )
    assert task["status"] == "succeeded"
    assert task["counts"] == {"received": 5, "applied": 4, "failed": 1}
    assert task["errors"][0]["index"] == 1
    assert task["errors"][0]["code"] == "course_not_found"
    # The same event_id again, in another request: still counted once.
    interact(api, [{"user_id": learner, "course_id": data[1], "type": "view", "event_id": "e-1"}])
    body = api.get(f"/v1/users/{learner}").json()
    assert body["interactions"] == {
        "view": 1,
        "enroll": 1,
        "complete": 0,
        "rate": 1,
        "bookmark": 0,
    }
    assert body["interests"] is None


def test_profile_is_written_through_the_queue(api: httpx.Client, community: Community) -> None:
    learner = community.learner("profiled")
    profile = {"interests": "baking and bread", "level": "beginner", "language": "en"}
    task = wait_task(api, accept(api.put(f"/v1/users/{learner}", json=profile)))
    assert task["status"] == "succeeded", task
    body = api.get(f"/v1/users/{learner}").json()
    assert {k: body[k] for k in profile} == profile
    bad = api.put(f"/v1/users/{learner}", json={"level": "expert", "colour": "red"})
    assert bad.status_code == 422
    locs = {tuple(d["loc"]) for d in bad.json()["error"]["details"]}
    assert {("body", "level"), ("body", "colour")} <= locs


async def _rows_mentioning(dsn: str, learner: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        return {
            "learners": await connection.fetchval(
                "SELECT count(*) FROM learners WHERE id = $1", learner
            ),
            "interactions": await connection.fetchval(
                "SELECT count(*) FROM interactions WHERE learner_id = $1", learner
            ),
            "tasks": await connection.fetchval(
                "SELECT count(*) FROM tasks WHERE position($1 in payload::text) > 0", learner
            ),
        }
    finally:
        await connection.close()


def test_deleting_a_learner_leaves_no_trace(
    api: httpx.Client, community: Community, stack_env: dict[str, str]
) -> None:
    learner = community.learner(f"leaving-{uuid.uuid4().hex[:6]}")
    other = community.learner(f"staying-{uuid.uuid4().hex[:6]}")
    cooking = community.ids("cooking")
    wait_task(api, accept(api.put(f"/v1/users/{learner}", json={"interests": "pasta"})))
    interact(
        api,
        [
            {"user_id": learner, "course_id": cooking[0], "type": "complete"},
            {"user_id": other, "course_id": cooking[0], "type": "enroll"},
            {"user_id": learner, "course_id": cooking[1], "type": "bookmark"},
        ],
    )
    recs = api.get(f"/v1/users/{learner}/recommendations").json()
    assert recs["strategy"] == "hybrid"
    dsn = stack_env["COURSEWISE_DATABASE_URL"].replace("+asyncpg", "")
    assert asyncio.run(_rows_mentioning(dsn, learner))["interactions"] == 2

    task = wait_task(api, accept(api.delete(f"/v1/users/{learner}")))
    assert task["status"] == "succeeded", task
    assert api.get(f"/v1/users/{learner}").status_code == 404
    assert asyncio.run(_rows_mentioning(dsn, learner)) == {
        "learners": 0,
        "interactions": 0,
        "tasks": 0,
    }
    # Only the learner's data went: the other learner's interaction in the same batch stays.
    assert api.get(f"/v1/users/{other}").json()["interactions"]["enroll"] == 1
    recs = api.get(f"/v1/users/{learner}/recommendations").json()
    assert recs["strategy"] == "popular"
    # Deleting again (or someone never seen) is not an error.
    assert wait_task(api, accept(api.delete(f"/v1/users/{learner}")))["status"] == "succeeded"
