"""The asynchronous write path through the real API, broker, worker, PostgreSQL and Milvus."""

import httpx

from tests.support.catalog import course, unique_id
from tests.support.http import accept, wait_task


def test_create_is_accepted_recorded_and_applied(api: httpx.Client) -> None:
    course_id = unique_id()
    # Its own provider: other tests write courses with this very text (equal vectors, tied
    # scores), so the search below filters on it to find this one among them.
    provider = f"Bakery {course_id}"
    task_id = accept(api.post("/v1/courses", json=course(course_id, provider=provider)))

    # The task is readable at once: it was recorded before the 202.
    first = api.get(f"/v1/tasks/{task_id}").json()
    assert first["type"] == "course.upsert"
    assert first["counts"]["received"] == 1

    task = wait_task(api, task_id)
    assert task["status"] == "succeeded", task
    assert task["counts"] == {"received": 1, "applied": 1, "failed": 0}
    assert task["started_at"] and task["finished_at"] and task["enqueued_at"]

    stored = api.get(f"/v1/courses/{course_id}").json()
    assert stored["skills"] == ["baking", "fermentation"]
    assert stored["version"] == task["seq"]
    assert stored["index_state"] == "indexed"
    assert stored["indexed_version"] == task["seq"]

    params: dict[str, str | int] = {
        "q": "how to bake sourdough bread",
        "limit": 5,
        "provider": provider,
    }
    hits = api.get("/v1/search", params=params).json()["items"]
    assert [hit["id"] for hit in hits] == [course_id] and hits[0]["score"] > 0.5


def test_replace_patch_and_delete_move_the_course_forward(api: httpx.Client) -> None:
    course_id = unique_id()
    wait_task(api, accept(api.post("/v1/courses", json=course(course_id))))

    replaced = wait_task(
        api,
        accept(
            api.post(
                "/v1/courses",
                json=course(course_id, title="Artisan Bread", price=20, currency="EUR"),
            )
        ),
    )
    patched = wait_task(
        api, accept(api.patch(f"/v1/courses/{course_id}", json={"level": "advanced"}))
    )
    assert replaced["status"] == patched["status"] == "succeeded"
    stored = api.get(f"/v1/courses/{course_id}").json()
    assert (stored["title"], stored["level"], stored["price"]) == ("Artisan Bread", "advanced", 20)
    assert stored["version"] == patched["seq"] > replaced["seq"]

    # The filterable fields in Milvus follow a patch that does not change the text.
    found = api.get(
        "/v1/search", params={"q": "artisan bread", "level": "advanced", "free": "false"}
    )
    assert course_id in [hit["id"] for hit in found.json()["items"]]

    deleted = wait_task(api, accept(api.delete(f"/v1/courses/{course_id}")))
    assert deleted["status"] == "succeeded"
    missing = api.get(f"/v1/courses/{course_id}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "course_not_found"
    hits = api.get("/v1/search", params={"q": "artisan bread baking", "limit": 20}).json()
    assert course_id not in [hit["id"] for hit in hits["items"]]


def test_patch_of_unknown_course_fails_with_a_reason(api: httpx.Client) -> None:
    task = wait_task(api, accept(api.patch(f"/v1/courses/{unique_id()}", json={"rating": 4.0})))
    assert task["status"] == "failed"
    assert task["counts"] == {"received": 1, "applied": 0, "failed": 1}
    assert task["errors"][0]["code"] == "course_not_found"
    assert task["error"]


def test_patch_that_breaks_the_contract_is_reported_per_item(api: httpx.Client) -> None:
    course_id = unique_id()
    wait_task(api, accept(api.post("/v1/courses", json=course(course_id))))
    task = wait_task(api, accept(api.patch(f"/v1/courses/{course_id}", json={"price": 10})))
    assert task["status"] == "failed"
    assert task["errors"][0]["code"] == "invalid_patch"
    assert "currency" in task["errors"][0]["reason"]
    assert api.get(f"/v1/courses/{course_id}").json()["price"] is None


def test_bulk_json_and_ndjson(api: httpx.Client) -> None:
    ids = [unique_id("bulk") for _ in range(3)]
    task = wait_task(api, accept(api.post("/v1/courses/bulk", json=[course(i) for i in ids])))
    assert task["type"] == "course.bulk_upsert"
    assert task["counts"] == {"received": 3, "applied": 3, "failed": 0}

    ndjson_ids = [unique_id("nd") for _ in range(2)]
    import json

    body = "\n".join(json.dumps(course(i)) for i in ndjson_ids) + "\n"
    response = api.post(
        "/v1/courses/bulk", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert wait_task(api, accept(response))["counts"]["applied"] == 2
    for course_id in ids + ndjson_ids:
        assert api.get(f"/v1/courses/{course_id}").status_code == 200


def test_invalid_bulk_lists_every_problem_and_queues_nothing(api: httpx.Client) -> None:
    before = api.get("/v1/tasks", params={"limit": 1}).json()["items"]
    good = course(unique_id())
    response = api.post(
        "/v1/courses/bulk",
        json=[good, {**course("bad id"), "colour": "red"}, {**good, "level": "expert"}],
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    locs = {tuple(detail["loc"]): detail["code"] for detail in error["details"]}
    assert locs[("body", 1, "id")] == "string_pattern_mismatch"
    assert locs[("body", 1, "colour")] == "extra_forbidden"
    assert locs[("body", 2, "level")] == "enum"
    assert locs[("body", 2, "id")] == "duplicate_id"
    after = api.get("/v1/tasks", params={"limit": 1}).json()["items"]
    assert after == before
    assert api.get(f"/v1/courses/{good['id']}").status_code == 404


def test_single_write_validation_and_limits(api: httpx.Client) -> None:
    response = api.post("/v1/courses", json={"id": "x", "title": "t" * 301, "description": ""})
    assert response.status_code == 422
    locs = [tuple(d["loc"]) for d in response.json()["error"]["details"]]
    assert ("body", "title") in locs and ("body", "description") in locs

    too_many = [course(f"many:{i}") for i in range(1001)]
    response = api.post("/v1/courses/bulk", json=too_many)
    assert response.status_code == 413
    assert response.json()["error"]["details"][0]["code"] == "too_many_items"

    response = api.post(
        "/v1/courses/bulk", content="id,title", headers={"content-type": "text/csv"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"

    response = api.patch("/v1/courses/some:course", json={})
    assert response.status_code == 422
