"""Title suggestions through the API: completions of what a search box holds, typos forgiven,
answered from PostgreSQL (the catalogue is the demo's plus courses made here)."""

from typing import Any

import httpx
import pytest

from tests.support.http import accept, wait_task

COURSES = [
    {"id": f"suggest:{n}", "title": title, "description": "A course.", **extra}
    for n, title, extra in [
        (1, "Underwater Basket Weaving", {"rating": 4.5}),
        (2, "Underwater Basket Repair", {"rating": 4.1}),
        (3, "Advanced Underwater Basket Weaving", {}),
        (4, "Underwater Basket Dyeing", {"rating": 4.8}),  # as long as Repair, better rated
        (5, "Underwriting Basics", {}),
    ]
]


@pytest.fixture(scope="module")
def catalogue(api: httpx.Client) -> list[dict[str, Any]]:
    task = wait_task(api, accept(api.post("/v1/courses/bulk", json=COURSES)))
    assert task["status"] == "succeeded", task
    return COURSES


def suggest(api: httpx.Client, q: str, **params: str | int) -> list[dict[str, Any]]:
    response = api.get("/v1/search/suggest", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_a_typed_prefix_completes_to_titles_that_start_with_it(
    api: httpx.Client, catalogue: list[dict[str, Any]]
) -> None:
    items = suggest(api, "underwater bas")
    ids = [item["id"] for item in items]
    # Titles that start with the text (shorter first, then better rated), then the title where
    # a later word starts with it.
    assert ids[:4] == ["suggest:4", "suggest:2", "suggest:1", "suggest:3"]
    assert items[0] == {
        "id": "suggest:4",
        "title": "Underwater Basket Dyeing",
        "highlight": "<mark>Underwater</mark> <mark>Bas</mark>ket Dyeing",
    }


def test_a_mistyped_prefix_still_completes(
    api: httpx.Client, catalogue: list[dict[str, Any]]
) -> None:
    items = suggest(api, "Udnerwater Baskte Wea")
    assert items[0]["id"] == "suggest:1"
    assert (
        items[0]["highlight"] == "<mark>Underwater</mark> <mark>Basket</mark> <mark>Wea</mark>ving"
    )
    assert {"suggest:2", "suggest:3", "suggest:4"} <= {item["id"] for item in items}


def test_limit_and_deleted_courses(api: httpx.Client, catalogue: list[dict[str, Any]]) -> None:
    assert [i["id"] for i in suggest(api, "underwater basket", limit=2)] == [
        "suggest:4",
        "suggest:2",
    ]
    gone = {"id": "suggest:gone", "title": "Underwater Photography", "description": "Soon gone."}
    assert wait_task(api, accept(api.post("/v1/courses", json=gone)))["status"] == "succeeded"
    assert "suggest:gone" in [i["id"] for i in suggest(api, "underwater pho")]
    deleted = wait_task(api, accept(api.delete("/v1/courses/suggest:gone")))
    assert deleted["status"] == "succeeded"
    assert "suggest:gone" not in [i["id"] for i in suggest(api, "underwater pho")]


@pytest.mark.parametrize(
    "q", ["", "   ", "a" * 201, "machine\x00learning", "line\nbreak", "tab\there"]
)
def test_empty_overlong_or_control_character_queries_are_refused(api: httpx.Client, q: str) -> None:
    response = api.get("/v1/search/suggest", params={"q": q})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == ["query", "q"]


def test_limit_out_of_range_is_refused(api: httpx.Client) -> None:
    response = api.get("/v1/search/suggest", params={"q": "machine", "limit": 21})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["query", "limit"]
