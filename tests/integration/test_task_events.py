"""The task event stream against the real stack: the counts as they change, ending with the
task's final state, after which the server closes the stream."""

import json
import uuid
from typing import Any

import httpx

from tests.support.catalog import course


def test_the_event_stream_ends_with_the_tasks_final_state(api: httpx.Client) -> None:
    prefix = f"events:{uuid.uuid4().hex[:8]}"
    bulk = [course(f"{prefix}:{n}", title=f"Bread {n}") for n in range(30)]
    response = api.post("/v1/courses/bulk", json=bulk)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]

    events: list[dict[str, Any]] = []
    with api.stream("GET", f"/v1/tasks/{task_id}/events", timeout=300) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    final = events[-1]
    assert final["status"] == "succeeded"
    assert final["counts"] == {"received": 30, "applied": 30, "failed": 0}
    assert final == api.get(f"/v1/tasks/{task_id}").json()
    # In order, each a change: statuses only move forward, counts only grow.
    order = ["queued", "processing", "succeeded"]
    ranks = [order.index(event["status"]) for event in events]
    assert ranks == sorted(ranks)
    applied = [event["counts"]["applied"] for event in events]
    assert applied == sorted(applied)
