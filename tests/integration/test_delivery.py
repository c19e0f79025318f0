"""A 202 is a promise: writes survive a broker that is unreachable when they are accepted, and a
message delivered twice changes nothing the second time."""

import uuid
from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import LocalStack, free_port
from shared.messaging import build_celery, publish_write
from shared.settings import Settings
from tests.support.catalog import course
from tests.support.http import accept, wait_task


@pytest.fixture
def api_without_broker(stack: LocalStack, stack_env: dict[str, str]) -> Iterator[httpx.Client]:
    """A second API process whose broker is unreachable (a RabbitMQ outage, as it sees it)."""
    env = {
        **stack_env,
        "COURSEWISE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//",
        "COURSEWISE_PUBLISH_TIMEOUT_S": "1",
    }
    other = LocalStack(env=env, var_dir=stack.var_dir / "no-broker", api_port=free_port())
    with other.running():
        other.start_api(ready_path="/healthz")
        with other.client(timeout=60, key=stack.api_key) as client:
            yield client


def test_write_accepted_during_broker_outage_is_applied_by_the_sweeper(
    api: httpx.Client, api_without_broker: httpx.Client
) -> None:
    ready = api_without_broker.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "not_ready"

    course_id = f"outage:{uuid.uuid4().hex[:8]}"
    task_id = accept(api_without_broker.post("/v1/courses", json=course(course_id)))
    assert api.get(f"/v1/tasks/{task_id}").json()["status"] == "queued"

    # No message reached RabbitMQ; the sweeper re-publishes it through the healthy broker.
    task = wait_task(api, task_id, timeout=60)
    assert task["status"] == "succeeded"
    assert api.get(f"/v1/courses/{course_id}").json()["index_state"] == "indexed"


def test_redelivered_message_changes_nothing(api: httpx.Client, stack_env: dict[str, str]) -> None:
    course_id = f"dup:{uuid.uuid4().hex[:8]}"
    task_id = accept(api.post("/v1/courses", json=course(course_id)))
    first = wait_task(api, task_id)
    before = api.get(f"/v1/courses/{course_id}").json()

    celery = build_celery(
        # pydantic-settings types its own _-prefixed init options; these keys are all fields
        Settings(**{k.removeprefix("COURSEWISE_").lower(): v for k, v in stack_env.items()})  # type: ignore[arg-type]
    )
    try:
        publish_write(celery, uuid.UUID(task_id), "course.upsert")
        publish_write(celery, uuid.UUID(task_id), "course.upsert")
    finally:
        celery.close()

    # Then a later write: once it has been applied, the duplicates ahead of it were consumed.
    marker = wait_task(api, accept(api.post("/v1/courses", json=course(f"{course_id}-after"))))
    assert marker["status"] == "succeeded"
    after = api.get(f"/v1/courses/{course_id}").json()
    assert after == before
    again = api.get(f"/v1/tasks/{task_id}").json()
    assert again["finished_at"] == first["finished_at"]
    assert again["counts"] == first["counts"]
