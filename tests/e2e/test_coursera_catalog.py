"""End to end over HTTP with a real worker process: 200 real courses from the Coursera scrape
go in through the bulk API, and come back out through search, filters and similar courses."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.catalog.sources import read_coursera_csv, shared_data_dir
from tests.support.http import accept, wait_task

CSV = shared_data_dir() / "coursera_courses.csv"

# A paraphrase of each course's description, sharing as few words with it as we could manage.
SCREENPLAY = "coursera:write-a-feature-length-screenplay-for-film-or-television"
PARAPHRASES = {
    "coursera:digital-democracy": "how safe are computerised and online ballots in elections",
    "coursera:musicianship-harmony": "chord extensions and borrowing chords from parallel modes",
    "coursera:types-of-conflict": "kinds of disagreement between people and handling them well",
    SCREENPLAY: "draft a complete movie script for cinema or TV you can pitch",
}


@pytest.fixture(scope="module")
def catalog(api: httpx.Client) -> Iterator[dict[str, dict[str, Any]]]:
    if not CSV.exists():
        pytest.skip(f"{CSV} is absent (the shared data folder is not beside this checkout)")
    courses = read_coursera_csv(CSV)[:200]
    assert set(PARAPHRASES) <= {c["id"] for c in courses}
    task = wait_task(api, accept(api.post("/v1/courses/bulk", json=courses)), timeout=300)
    assert task["status"] == "succeeded", task
    assert task["counts"] == {"received": 200, "applied": 200, "failed": 0}
    yield {c["id"]: c for c in courses}


def search(api: httpx.Client, **params: str | int) -> list[dict[str, Any]]:
    response = api.get("/v1/search", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


@pytest.mark.parametrize("course_id", sorted(PARAPHRASES))
def test_paraphrase_finds_the_course_in_the_top_five(
    api: httpx.Client, catalog: dict[str, dict[str, Any]], course_id: str
) -> None:
    top = [hit["id"] for hit in search(api, q=PARAPHRASES[course_id], limit=5)]
    assert course_id in top, top


def test_filters_hold_in_search(api: httpx.Client, catalog: dict[str, dict[str, Any]]) -> None:
    hits = search(api, q="introduction to programming", level="beginner", limit=20)
    assert hits and all(hit["level"] == "beginner" for hit in hits)
    provider = catalog["coursera:digital-democracy"]["provider"]
    hits = search(api, q="security", provider=provider, limit=20)
    assert hits and {hit["provider"] for hit in hits} == {provider}
    skill = catalog["coursera:musicianship-harmony"]["skills"][0]
    hits = search(api, q="music", skill=skill, limit=20)
    assert hits and all(skill in hit["skills"] for hit in hits)


def test_similar_courses_share_the_topic(
    api: httpx.Client, catalog: dict[str, dict[str, Any]]
) -> None:
    response = api.get("/v1/courses/coursera:musicianship-harmony/similar", params={"limit": 5})
    items = response.json()["items"]
    assert len(items) == 5
    assert "coursera:musicianship-harmony" not in [i["id"] for i in items]
    text = " ".join(i["title"] + " " + i["description"] for i in items[:3]).lower()
    assert "music" in text


def test_not_found_and_validation_bodies(
    api: httpx.Client, catalog: dict[str, dict[str, Any]]
) -> None:
    missing = api.get("/v1/courses/coursera:no-such-course")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "code": "course_not_found",
            "message": "Course 'coursera:no-such-course' does not exist.",
            "details": [
                {
                    "loc": ["path", "course_id"],
                    "code": "course_not_found",
                    "message": "no course with this id",
                }
            ],
        }
    }
    broken = dict(catalog["coursera:types-of-conflict"], rating=7, level="guru")
    invalid = api.post("/v1/courses/bulk", json=[broken])
    assert invalid.status_code == 422
    assert {tuple(d["loc"]) for d in invalid.json()["error"]["details"]} == {
        ("body", 0, "rating"),
        ("body", 0, "level"),
    }


def test_update_and_delete_propagate_to_search(
    api: httpx.Client, catalog: dict[str, dict[str, Any]]
) -> None:
    course_id = "coursera:digital-democracy"
    query = "underwater basket weaving for marine biologists"
    assert course_id not in [hit["id"] for hit in search(api, q=query, limit=5)]

    changed = dict(
        catalog[course_id],
        title="Underwater Basket Weaving",
        description="Weave baskets while scuba diving, a craft course for marine biologists.",
        # A course that changes its subject changes its skills too: the old ones (elections,
        # voting, security) would rightly keep it found for questions about elections.
        skills=["basket weaving", "scuba diving"],
    )
    assert wait_task(api, accept(api.post("/v1/courses", json=changed)))["status"] == "succeeded"
    hits = search(api, q=query, limit=5)
    assert hits[0]["id"] == course_id and hits[0]["title"] == "Underwater Basket Weaving"
    old = [hit["id"] for hit in search(api, q=PARAPHRASES[course_id], limit=5)]
    assert course_id not in old

    assert wait_task(api, accept(api.delete(f"/v1/courses/{course_id}")))["status"] == "succeeded"
    assert course_id not in [hit["id"] for hit in search(api, q=query, limit=10)]
    assert api.get(f"/v1/courses/{course_id}").status_code == 404
    similar = api.get(f"/v1/courses/{course_id}/similar")
    assert similar.status_code == 404
