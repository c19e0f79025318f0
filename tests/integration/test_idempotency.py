"""Idempotency-Key: a retried request returns the original task and has one effect."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.catalog import course
from tests.support.http import accept, wait_task


def test_same_key_same_body_returns_the_original_task(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = course(f"idem:{key[:8]}")
    first = accept(api.post("/v1/courses", json=body, headers={"Idempotency-Key": key}))
    again = accept(api.post("/v1/courses", json=body, headers={"Idempotency-Key": key}))
    assert again == first
    wait_task(api, first)
    after = accept(api.post("/v1/courses", json=body, headers={"Idempotency-Key": key}))
    assert after == first
    mine = [
        t
        for t in api.get("/v1/tasks", params={"limit": 50}).json()["items"]
        if t["task_id"] == first
    ]
    assert len(mine) == 1
    assert api.get(f"/v1/courses/{body['id']}").json()["version"] == mine[0]["seq"]


def test_same_key_other_body_is_refused(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = course(f"idem:{key[:8]}")
    accept(api.post("/v1/courses", json=body, headers={"Idempotency-Key": key}))
    other = api.post(
        "/v1/courses", json={**body, "title": "Other"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert error["details"][0]["loc"] == ["header", "idempotency-key"]
    # A key is bound to its request, not only to the body: the same key on another endpoint.
    elsewhere = api.delete(f"/v1/courses/{body['id']}", headers={"Idempotency-Key": key})
    assert elsewhere.status_code == 409


def test_concurrent_retries_with_one_key_create_one_task(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = [course(f"idem-bulk:{key[:8]}:{i}") for i in range(3)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(
                lambda _: api.post("/v1/courses/bulk", json=body, headers={"Idempotency-Key": key}),
                range(8),
            )
        )
    task_ids = {accept(response) for response in responses}
    assert len(task_ids) == 1
    assert wait_task(api, task_ids.pop())["counts"]["applied"] == 3


def test_bad_key_is_rejected_on_the_header(api: httpx.Client) -> None:
    response = api.post("/v1/courses", json=course("idem:bad"), headers={"Idempotency-Key": "a b"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["header", "Idempotency-Key"]
