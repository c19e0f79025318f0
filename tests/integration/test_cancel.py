"""Cancelling queued tasks against the real stack: a cancelled task is never applied, even when
its message reaches a worker afterwards, and a cancel racing a worker's claim has one winner."""

import asyncio
import threading
import uuid
from typing import Any

import httpx

from shared.db import create_engine, create_sessionmaker, transaction
from shared.ledger.repository import TaskRepository
from shared.messaging import build_celery, publish_write
from shared.settings import Settings, get_settings
from tests.support.catalog import course
from tests.support.http import accept, wait_task


def queued_without_message(course_ids: list[str]) -> list[str]:
    """Course writes recorded in the ledger as the API records them, but not yet published:
    their messages are sent by the test, when it chooses (a message still in a queue)."""

    async def create() -> list[str]:
        engine = create_engine(get_settings())
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                repo = TaskRepository(session)
                created = [
                    await repo.create(
                        type="course.upsert", payload={"items": [course(cid)]}, received=1
                    )
                    for cid in course_ids
                ]
        finally:
            await engine.dispose()
        return [str(task.id) for task in created]

    return asyncio.run(create())


def publish(stack_env: dict[str, str], task_ids: list[str]) -> None:
    celery = build_celery(
        # pydantic-settings types its own _-prefixed init options; these keys are all fields
        Settings(**{k.removeprefix("COURSEWISE_").lower(): v for k, v in stack_env.items()})  # type: ignore[arg-type]
    )
    try:
        for task_id in task_ids:
            publish_write(celery, uuid.UUID(task_id), "course.upsert")
    finally:
        celery.close()


def settle(api: httpx.Client) -> None:
    """Wait until the worker has handled every message published so far (one queue, in
    order): a write sent now is applied after them."""
    wait_task(api, accept(api.post("/v1/courses", json=course(f"settle:{uuid.uuid4().hex[:8]}"))))


def test_a_cancelled_task_is_never_applied_even_when_its_message_arrives_later(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    course_id = f"cancelled:{uuid.uuid4().hex[:8]}"
    [task_id] = queued_without_message([course_id])
    cancelled = api.post(f"/v1/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text

    publish(stack_env, [task_id])
    settle(api)

    task = api.get(f"/v1/tasks/{task_id}").json()
    assert (task["status"], task["attempts"], task["counts"]["applied"]) == ("cancelled", 0, 0)
    assert api.get(f"/v1/courses/{course_id}").status_code == 404
    # Counted in the API's metrics.
    metrics = api.get("/metrics").text
    assert 'coursewise_tasks_cancelled_total{type="course.upsert"}' in metrics


def test_a_cancel_racing_the_worker_has_exactly_one_winner(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    course_ids = [f"race:{uuid.uuid4().hex[:8]}" for _ in range(24)]
    task_ids = queued_without_message(course_ids)
    answers: dict[str, httpx.Response] = {}

    def cancel_all() -> None:
        # From the newest: the worker applies from the oldest, so the two meet on the way.
        for task_id in reversed(task_ids):
            answers[task_id] = api.post(f"/v1/tasks/{task_id}/cancel")

    canceller = threading.Thread(target=cancel_all)
    canceller.start()
    publish(stack_env, task_ids)
    canceller.join(60)
    settle(api)

    outcomes: dict[str, int] = {"cancelled": 0, "applied": 0}
    for course_id, task_id in zip(course_ids, task_ids, strict=True):
        task: dict[str, Any] = api.get(f"/v1/tasks/{task_id}").json()
        stored = api.get(f"/v1/courses/{course_id}")
        answer = answers[task_id]
        if answer.status_code == 200:
            outcomes["cancelled"] += 1
            assert task["status"] == "cancelled" and task["attempts"] == 0, task
            assert stored.status_code == 404, stored.text
        else:
            outcomes["applied"] += 1
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"]["code"] == "task_not_cancellable"
            assert task["status"] == "succeeded", task
            assert stored.status_code == 200 and stored.json()["version"] == task["seq"]
    print(f"cancel race: {outcomes}")
