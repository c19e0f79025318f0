"""The read API: filters, cursors, similar courses, tasks listing, health and the docs."""

import json
from typing import Any

import httpx
import pytest

from devstack.run import DEMO_CATALOG
from tests.support.http import accept, wait_task

DEMO = json.loads(DEMO_CATALOG.read_text())


@pytest.fixture(scope="module")
def demo(api: httpx.Client) -> list[dict[str, Any]]:
    task = wait_task(api, accept(api.post("/v1/courses/bulk", json=DEMO)))
    assert task["status"] == "succeeded", task
    return DEMO


def list_all(api: httpx.Client, params: dict[str, str | int]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        more: dict[str, str] = {"cursor": cursor} if cursor else {}
        page = api.get("/v1/courses", params={**params, "limit": 100, **more}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_cursor_pagination_walks_every_course_once(
    api: httpx.Client, demo: list[dict[str, Any]]
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/courses", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    demo_ids = {c["id"] for c in demo}
    assert demo_ids <= set(seen)
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"level": "beginner"}, lambda c: c.get("level") == "beginner"),
        ({"language": "es"}, lambda c: c.get("language") == "es"),
        ({"skill": "PYTHON"}, lambda c: "python" in c.get("skills", [])),
        ({"free": "true"}, lambda c: not c.get("price")),
        ({"free": "false"}, lambda c: bool(c.get("price"))),
        ({"max_duration": 10}, lambda c: (c.get("duration_hours") or 1e9) <= 10),
        ({"provider": "Lakeside University"}, lambda c: c.get("provider") == "Lakeside University"),
    ],
)
def test_list_and_search_filters_agree_with_the_catalog(
    api: httpx.Client, demo: list[dict[str, Any]], params: dict[str, str | int], predicate: object
) -> None:
    expected = {c["id"] for c in demo if predicate(c)}  # type: ignore[operator]
    assert expected, f"the demo catalog has no course for {params}"
    listed = list_all(api, params)
    assert all(predicate(item) for item in listed)  # type: ignore[operator]
    assert {i["id"] for i in listed if i["id"].startswith("demo:")} == expected
    found = api.get("/v1/search", params={**params, "q": "learn", "limit": 50}).json()["items"]
    assert found and all(predicate(hit) for hit in found)  # type: ignore[operator]


def test_search_ranks_by_meaning_and_pages(api: httpx.Client, demo: list[dict[str, Any]]) -> None:
    response = api.get("/v1/search", params={"q": "train deep neural networks", "limit": 3})
    page = response.json()
    scores = [item["score"] for item in page["items"]]
    assert scores == sorted(scores, reverse=True)
    assert any(
        "neural" in item["description"].lower() or "deep" in item["title"].lower()
        for item in page["items"][:2]
    )
    second = api.get(
        "/v1/search",
        params={"q": "train deep neural networks", "limit": 3, "cursor": page["next_cursor"]},
    ).json()
    assert not {i["id"] for i in page["items"]} & {i["id"] for i in second["items"]}


def test_similar_courses(api: httpx.Client, demo: list[dict[str, Any]]) -> None:
    target = next(c for c in demo if "machine learning" in c["title"].lower())
    response = api.get(f"/v1/courses/{target['id']}/similar", params={"limit": 5})
    items = response.json()["items"]
    assert len(items) == 5 and target["id"] not in [i["id"] for i in items]
    assert all(-1 <= i["similarity"] <= 1 and i["score"] >= i["similarity"] for i in items)
    assert all(i["reason_code"] and i["reason"] for i in items)
    assert response.json()["recommendation_id"]
    filtered = api.get(f"/v1/courses/{target['id']}/similar", params={"level": "advanced"}).json()
    assert filtered["items"] and all(i["level"] == "advanced" for i in filtered["items"])
    missing = api.get("/v1/courses/demo:does-not-exist/similar")
    assert missing.status_code == 404
    assert missing.json()["error"]["details"][0]["loc"] == ["path", "course_id"]


def test_tasks_listing_filters_newest_first(api: httpx.Client, demo: list[dict[str, Any]]) -> None:
    for course in demo[:3]:
        wait_task(api, accept(api.post("/v1/courses", json=course)))
    page = api.get("/v1/tasks", params={"limit": 2, "status": "succeeded"}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    seqs = [t["seq"] for t in page["items"]]
    assert seqs == sorted(seqs, reverse=True)
    nxt = api.get(
        "/v1/tasks", params={"limit": 2, "status": "succeeded", "cursor": page["next_cursor"]}
    ).json()
    assert all(t["seq"] < min(seqs) for t in nxt["items"])
    bulk = api.get("/v1/tasks", params={"type": "course.bulk_upsert"}).json()["items"]
    assert bulk and all(t["type"] == "course.bulk_upsert" for t in bulk)
    bad = api.get("/v1/tasks", params={"status": "exploded"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"][:2] == [
        "query",
        "status",
    ]
    unknown = api.get("/v1/tasks/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "task_not_found"


def test_errors_share_one_shape(api: httpx.Client) -> None:
    for response in (
        api.get("/v1/courses/bad%20id"),
        api.get("/v1/courses", params={"cursor": "not-a-cursor"}),
        api.get("/v1/search"),
        api.get("/no/such/route"),
    ):
        body = response.json()
        assert set(body) == {"error"}, body
        assert {"code", "message", "details"} <= set(body["error"])
        assert 400 <= response.status_code < 500


def test_health_and_docs(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["checks"] == {"postgres": "ok", "rabbitmq": "ok", "milvus": "ok"}
    assert api.get("/docs").status_code == 200
    spec = api.get("/openapi.json").json()
    bulk = spec["paths"]["/v1/courses/bulk"]["post"]
    assert {"application/json", "application/x-ndjson"} <= set(bulk["requestBody"]["content"])
    assert "422" in bulk["responses"] and "413" in bulk["responses"]
    assert "404" in spec["paths"]["/v1/courses/{course_id}"]["get"]["responses"]
