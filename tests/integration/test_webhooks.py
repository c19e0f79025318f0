"""Webhooks against the real stack, with a real HTTP receiver on loopback: a signed delivery
arrives and verifies, a receiver failing three times gets exactly one successful delivery (all
in the log), a forbidden destination is refused, and bad registrations are 422s."""

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cli.main import main as cli
from tests.support.catalog import course
from tests.support.http import accept, assert_error, wait_task
from tests.support.receiver import Receiver, receiving

SECRET = "a-receiver-secret-of-some-length"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def webhook(api: httpx.Client, receiver: Receiver) -> Iterator[dict[str, Any]]:
    created = api.post("/v1/webhooks", json={"url": receiver.url, "secret": SECRET})
    assert created.status_code == 201, created.text
    yield created.json()
    api.delete(f"/v1/webhooks/{created.json()['id']}")


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    parts = dict(part.split("=", 1) for part in headers["Coursewise-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(parts["v1"], expected.hexdigest())


def deliveries(api: httpx.Client, webhook_id: str, task_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 100}).json()
    return [item for item in page["items"] if item["task_id"] == task_id]


def test_a_signed_delivery_arrives_and_verifies(
    api: httpx.Client, receiver: Receiver, webhook: dict[str, Any]
) -> None:
    assert "secret" not in webhook and webhook["url"] == receiver.url
    task_id = accept(api.post("/v1/courses", json=course(f"hook:{uuid.uuid4().hex[:8]}")))
    task = wait_task(api, task_id)
    [request] = receiver.wait_for(task_id)
    assert verify(SECRET, request.headers, request.body)
    assert not verify("another-secret-entirely", request.headers, request.body)
    body = request.json()
    assert body["event"] == request.headers["Coursewise-Event"] == "task.succeeded"
    assert body["task"]["status"] == "succeeded" and body["task"]["seq"] == task["seq"]
    assert body["task"]["counts"] == task["counts"]
    assert body["delivery_id"] == request.headers["Coursewise-Delivery"]


def test_a_receiver_failing_three_times_gets_one_successful_delivery(
    api: httpx.Client, receiver: Receiver, webhook: dict[str, Any]
) -> None:
    course_id = f"hook:{uuid.uuid4().hex[:8]}"
    # A patch of an unknown course: the task fails (the event of a failure).
    response = api.patch(f"/v1/courses/{course_id}", json={"rating": 4.0})
    task_id = accept(response)
    receiver.script[task_id] = [500, 503, 500]
    assert wait_task(api, task_id)["status"] == "failed"
    received = receiver.wait_for(task_id, count=4)
    assert [r.status for r in received] == [500, 503, 500, 200]
    # The same delivery each time, with the same body.
    assert len({r.headers["Coursewise-Delivery"] for r in received}) == 1
    assert len({r.body for r in received}) == 1
    assert received[0].json()["event"] == "task.failed"

    def logged() -> dict[str, Any]:
        [entry] = deliveries(api, webhook["id"], task_id)
        return entry

    entry = logged()
    assert (entry["status"], entry["attempts"], entry["last_status_code"]) == (
        "succeeded",
        4,
        200,
    )
    assert entry["delivered_at"] is not None and entry["event"] == "task.failed"
    # No further request came after the success.
    wait_task(api, accept(api.post("/v1/courses", json=course(f"hook:{uuid.uuid4().hex[:8]}"))))
    assert len(receiver.for_task(task_id)) == 4


def test_forbidden_or_malformed_destinations_and_unknown_events_are_422(
    api: httpx.Client,
) -> None:
    for url in (
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]/hook",
        "http://192.168.0.10:8080/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
    ):
        response = api.post("/v1/webhooks", json={"url": url, "secret": SECRET})
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["loc"] == ["body", "url"], (url, error)
        assert error["details"][0]["code"] == "forbidden_destination", (url, error)
    for url in ("http://", "http://user:pw@127.0.0.1/hook", "http://127.0.0.1:99999/"):
        error = assert_error(
            api.post("/v1/webhooks", json={"url": url, "secret": SECRET}), 422, "validation_error"
        )
        assert error["details"][0]["code"] == "malformed_url", (url, error)
    unknown = api.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1/h", "secret": SECRET, "events": ["x"]}
    )
    error = assert_error(unknown, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "events", 0]
    assert_error(api.get(f"/v1/webhooks/{uuid.uuid4()}/deliveries"), 404, "webhook_not_found")
    listed = api.get("/v1/webhooks").json()["items"]
    assert not [hook for hook in listed if "10.1.2.3" in hook["url"]]


def test_the_cli_registers_lists_and_removes_an_endpoint(
    api: httpx.Client, receiver: Receiver, capsys: Any
) -> None:
    key = api.headers["Authorization"].removeprefix("Bearer ")
    base = ["--api", str(api.base_url), "--api-key", key, "webhooks"]
    argv = [*base, "add", "--url", receiver.url, "--secret", SECRET, "--event", "task.cancelled"]
    assert cli(argv) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["events"] == ["task.cancelled"]
    assert cli([*base, "list"]) == 0
    assert created["id"] in capsys.readouterr().out
    assert cli([*base, "add", "--url", "http://10.0.0.1/", "--secret", SECRET]) == 1
    assert "not allowed" in capsys.readouterr().err
    assert cli([*base, "remove", created["id"]]) == 0
    assert cli([*base, "deliveries", created["id"]]) == 1
