"""Read-your-writes against the real stack: a read carrying the token of a 202 sees that write
(course by id, list, search, similar), a bad token is a 422, and a write that cannot become
visible (its worker stopped) makes the read answer 503 saying so, never older data."""

import hashlib
import hmac
import uuid

import httpx

from devstack.stack import LocalStack
from tests.support.catalog import course
from tests.support.http import assert_error, wait_task


def waiting(token: str) -> dict[str, str | float]:
    # The test machine is shared and often loaded: more than the default 2 s.
    return {"consistency": token, "consistency_wait": 10}


def write(api: httpx.Client, method: str, path: str, body: object) -> tuple[str, str]:
    response = api.request(method, path, json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    return accepted["task_id"], accepted["consistency_token"]


def test_a_read_with_the_token_sees_the_write_at_once(api: httpx.Client) -> None:
    course_id = f"ryw:{uuid.uuid4().hex[:8]}"
    provider = f"Kiln {course_id}"
    body = course(course_id, title="Pottery on the wheel", provider=provider)
    first, token = write(api, "POST", "/v1/courses", body)
    # No polling of the task: the read itself waits for the write.
    got = api.get(f"/v1/courses/{course_id}", params=waiting(token))
    assert got.status_code == 200, got.text
    task = api.get(f"/v1/tasks/{first}").json()
    assert task["status"] == "succeeded"
    assert got.json()["version"] == task["seq"] and got.json()["index_state"] == "indexed"

    # A change of a course this process has cached: the token's read is not the old answer.
    assert api.get(f"/v1/courses/{course_id}").json()["title"] == "Pottery on the wheel"
    _, token = write(
        api, "PATCH", f"/v1/courses/{course_id}", {"title": "Glazing and firing stoneware"}
    )
    got = api.get(f"/v1/courses/{course_id}", params=waiting(token))
    assert got.status_code == 200, got.text
    assert got.json()["title"] == "Glazing and firing stoneware"

    # Search (keyword and semantic sides) and the list see it too.
    params = {"q": "glazing stoneware firing", "provider": provider, **waiting(token)}
    hits = api.get("/v1/search", params=params)
    assert hits.status_code == 200, hits.text
    assert [hit["id"] for hit in hits.json()["items"]] == [course_id]
    assert not hits.json()["degraded"]
    listed = api.get("/v1/courses", params={"provider": provider, **waiting(token)})
    assert listed.status_code == 200, listed.text
    assert [item["title"] for item in listed.json()["items"]] == ["Glazing and firing stoneware"]
    similar = api.get(f"/v1/courses/{course_id}/similar", params=waiting(token))
    assert similar.status_code == 200, similar.text


def test_a_malformed_or_foreign_token_is_a_422_at_its_location(api: httpx.Client) -> None:
    for bad in ("nope", "ct1.12", "ct1.x.abc", "ct2.1.abc"):
        error = assert_error(
            api.get("/v1/courses", params={"consistency": bad}), 422, "validation_error"
        )
        assert error["details"][0] == {
            "loc": ["query", "consistency"],
            "code": "malformed_token",
            "message": error["details"][0]["message"],
        }
    # Well formed, signed with another key (another deployment's, or made up).
    signature = hmac.new(b"someone else", b"ct1.1", hashlib.sha256).hexdigest()[:22]
    error = assert_error(
        api.get("/v1/search", params={"q": "x", "consistency": f"ct1.1.{signature}"}),
        422,
        "validation_error",
    )
    assert error["details"][0]["code"] == "foreign_token"
    wait = api.get("/v1/courses", params={"consistency": "nope", "consistency_wait": 11})
    assert wait.status_code == 422


def test_a_token_wait_times_out_cleanly_while_the_worker_is_stopped(
    api: httpx.Client, stack: LocalStack
) -> None:
    [worker] = [p for p in stack.processes if p.name == "worker" and p.alive()]
    worker.stop()
    try:
        course_id = f"stalled:{uuid.uuid4().hex[:8]}"
        task_id, token = write(api, "POST", "/v1/courses", course(course_id))
        late = api.get(
            f"/v1/courses/{course_id}", params={"consistency": token, "consistency_wait": 0.5}
        )
        error = assert_error(late, 503, "consistency_timeout")
        assert task_id in error["message"] and "queued" in error["message"]
        assert error["details"][0]["loc"] == ["query", "consistency"]
        assert late.headers["Retry-After"]
        # Search says the same, rather than answering without the write.
        found = api.get(
            "/v1/search", params={"q": "sourdough", "consistency": token, "consistency_wait": 0.2}
        )
        assert_error(found, 503, "consistency_timeout")
    finally:
        stack.start_worker(metrics_port=stack.worker_metrics_port)
    assert wait_task(api, task_id, timeout=300)["status"] == "succeeded"
    got = api.get(f"/v1/courses/{course_id}", params=waiting(token))
    assert got.status_code == 200 and got.json()["id"] == course_id
