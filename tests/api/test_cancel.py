"""Cancelling queued tasks through the app in-process (no worker: every write stays queued)."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest

from tests.support.catalog import course, unique_id
from tests.support.http import accept, assert_error
from tests.support.inprocess import InProcessApi

pytestmark = pytest.mark.anyio


async def test_a_queued_task_is_cancelled_once_and_then_is_a_conflict(
    admin: httpx.AsyncClient,
) -> None:
    task_id = accept(await admin.post("/v1/courses", json=course(unique_id("cancel"))))
    cancelled = await admin.post(f"/v1/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert (body["task_id"], body["status"], body["error"]) == (task_id, "cancelled", "cancelled")
    assert body["finished_at"] is not None
    assert (await admin.get(f"/v1/tasks/{task_id}")).json()["status"] == "cancelled"

    again = await admin.post(f"/v1/tasks/{task_id}/cancel")
    error = assert_error(again, 409, "task_not_cancellable")
    assert "cancelled" in error["message"]
    assert_error(await admin.post(f"/v1/tasks/{uuid.uuid4()}/cancel"), 404, "task_not_found")


async def test_another_owners_task_cannot_be_cancelled(
    admin: httpx.AsyncClient, inprocess: InProcessApi
) -> None:
    task_id = accept(await admin.post("/v1/courses", json=course(unique_id("cancel"))))
    key = await inprocess.new_key(["write"], owner=f"partner-{uuid.uuid4().hex[:6]}")
    async with inprocess.client(key) as partner:
        assert_error(await partner.post(f"/v1/tasks/{task_id}/cancel"), 404, "task_not_found")
        # The filtered form only reaches the partner's own tasks.
        result = (await partner.post("/v1/tasks/cancel", json={"statuses": ["queued"]})).json()
        assert task_id not in result["task_ids"]
    assert (await admin.get(f"/v1/tasks/{task_id}")).json()["status"] == "queued"


async def test_a_filter_cancels_what_it_matches_and_nothing_else(
    inprocess: InProcessApi,
) -> None:
    # An owner of its own: the filter reaches that owner's tasks only, not other tests'.
    key = await inprocess.new_key(["write", "read"], owner=f"bulk-{uuid.uuid4().hex[:6]}")
    async with inprocess.client(key) as writer:
        marker = datetime.now(UTC)
        upsert = accept(await writer.post("/v1/courses", json=course(unique_id("cancel"))))
        patch = accept(
            await writer.patch(f"/v1/courses/{unique_id('cancel')}", json={"rating": 4.0})
        )

        # Only tasks enqueued before `marker`: none of the two.
        before = {"types": ["course.patch"], "enqueued_before": marker.isoformat()}
        none = await writer.post("/v1/tasks/cancel", json=before)
        assert none.status_code == 200 and none.json() == {"cancelled": 0, "task_ids": []}

        later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        matched = await writer.post(
            "/v1/tasks/cancel", json={"types": ["course.patch"], "enqueued_before": later}
        )
        assert matched.status_code == 200, matched.text
        assert matched.json() == {"cancelled": 1, "task_ids": [patch]}
        assert (await writer.get(f"/v1/tasks/{patch}")).json()["status"] == "cancelled"
        assert (await writer.get(f"/v1/tasks/{upsert}")).json()["status"] == "queued"

        # A status other than queued matches nothing: only queued tasks are ever cancelled.
        processing = await writer.post("/v1/tasks/cancel", json={"statuses": ["processing"]})
        assert processing.json() == {"cancelled": 0, "task_ids": []}
        everything = await writer.post("/v1/tasks/cancel", json={"statuses": ["queued"]})
        assert everything.json() == {"cancelled": 1, "task_ids": [upsert]}


async def test_bad_cancel_filters_are_422_with_their_location(admin: httpx.AsyncClient) -> None:
    error = assert_error(await admin.post("/v1/tasks/cancel", json={}), 422, "validation_error")
    assert error["details"][0]["code"] == "missing_filter"
    error = assert_error(
        await admin.post("/v1/tasks/cancel", json={"types": ["course.nope"]}),
        422,
        "validation_error",
    )
    assert error["details"][0]["loc"][:2] == ["body", "types"]
    for before in ("2026-01-01T00:00:00", 0):  # no zone; a number, not a date-time
        error = assert_error(
            await admin.post("/v1/tasks/cancel", json={"enqueued_before": before}),
            422,
            "validation_error",
        )
        assert error["details"][0]["loc"] == ["body", "enqueued_before"]


async def test_the_event_stream_of_a_task_ends_with_its_final_state(
    admin: httpx.AsyncClient,
) -> None:
    task_id = accept(await admin.post("/v1/courses", json=course(unique_id("events"))))
    assert_error(await admin.get(f"/v1/tasks/{uuid.uuid4()}/events"), 404, "task_not_found")

    async def cancel_soon() -> None:
        await anyio.sleep(0.5)
        assert (await admin.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200

    events: list[dict[str, object]] = []
    async with anyio.create_task_group() as group:
        group.start_soon(cancel_soon)
        async with admin.stream("GET", f"/v1/tasks/{task_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
    # The stream closed by itself after the final state.
    assert [event["status"] for event in events] == ["queued", "cancelled"]
    assert all(event["task_id"] == task_id for event in events)


async def test_other_methods_on_the_filtered_cancel_are_405(admin: httpx.AsyncClient) -> None:
    for method in ("GET", "OPTIONS", "DELETE"):
        response = await admin.request(method, "/v1/tasks/cancel")
        error = assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST" and error["details"][0]["loc"] == ["method"]
