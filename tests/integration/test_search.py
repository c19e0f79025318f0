"""Hybrid search through HTTP: title matches, fusion, highlights, facets, sort with cursors,
fresh writes on both sides, bad input, and the answer from PostgreSQL alone while Milvus is
down (last: it stops the run's Milvus and starts it again)."""

import asyncio
import json
import time
from typing import Any

import asyncpg
import httpx
import pytest

from devstack.run import DEMO_CATALOG
from devstack.stack import LocalStack
from tests.support.http import accept, wait_task

DEMO = json.loads(DEMO_CATALOG.read_text())
FACETS = "level,language,provider,skills,free,duration"


@pytest.fixture(scope="module")
def demo(api: httpx.Client) -> list[dict[str, Any]]:
    task = wait_task(api, accept(api.post("/v1/courses/bulk", json=DEMO)))
    assert task["status"] == "succeeded", task
    return DEMO


def search(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/v1/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def every_page(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = search(api, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_the_typed_title_comes_first_exact_or_with_a_typo(
    api: httpx.Client, demo: list[dict[str, Any]]
) -> None:
    for course in demo:
        title = course["title"]
        assert search(api, q=title)["items"][0]["id"] == course["id"], title
        assert search(api, q=title.upper() + "!")["items"][0]["id"] == course["id"], title
        words = title.split()
        longest = max(range(len(words)), key=lambda i: len(words[i]))
        word = words[longest]
        at = next(i for i in range(1, len(word) - 1) if word[i] != word[i + 1])
        words[longest] = word[:at] + word[at + 1] + word[at] + word[at + 2 :]  # one swap
        typo = " ".join(words)
        first = search(api, q=typo, explain="true")["items"][0]
        assert first["id"] == course["id"], typo
        assert first["explain"]["title_match"] == "typo"


def test_misspelt_query_finds_the_course_by_its_other_words(
    api: httpx.Client, demo: list[dict[str, Any]]
) -> None:
    ids = [hit["id"] for hit in search(api, q="pyhton for data anlysis", limit=10)["items"]]
    # Other tests share the catalogue, and a course titled "Python for data analysis" rightly
    # ranks first (its title up to typos): among the demo's courses, pandas is first.
    demo_ids = [course_id for course_id in ids if course_id.startswith("demo:")]
    assert demo_ids[0] == "demo:data-analysis-pandas", ids
    if "demo:python-async-concurrency" in ids:
        assert ids.index("demo:data-analysis-pandas") < ids.index("demo:python-async-concurrency")


PARAPHRASES = {
    "teach a computer to recognise objects in photos": "demo:computer-vision-cnn",
    "keep my money under control and save for retirement": "demo:finance-personal",
    "talk in front of an audience without fear": "demo:public-speaking",
    "write my first little programs from scratch": "demo:python-foundations",
    "make charts that tell a story with numbers": "demo:data-visualization-storytelling",
    "ship models to users and monitor them": "demo:ml-production-mlops",
    "ask a relational store questions with queries": "demo:sql-essentials",
    "run containers and orchestrate clusters": "demo:devops-docker-kubernetes",
    "protect a company network from attackers": "demo:cybersecurity-fundamentals",
    "what to eat to stay healthy": "demo:nutrition-science",
    "how much is a business worth": "demo:finance-corporate-valuation",
    "chords, scales and reading sheet music": "demo:music-theory-basics",
    "why the planet is warming and what we can do": "demo:climate-science-intro",
    "run sprints with a team using boards and stand-ups": "demo:project-management-agile",
}


def test_meaning_without_the_title_words_finds_the_course_as_semantic_search_did(
    api: httpx.Client, demo: list[dict[str, Any]]
) -> None:
    hybrid = semantic = 0
    for query, course_id in PARAPHRASES.items():
        hybrid += course_id in [hit["id"] for hit in search(api, q=query, limit=5)["items"]]
        alone = search(api, q=query, limit=5, semantic_ratio=1)["items"]
        semantic += course_id in [hit["id"] for hit in alone]
    assert hybrid >= semantic, (hybrid, semantic)
    assert hybrid >= len(PARAPHRASES) - 1


def test_explanations_carry_both_sides_and_the_fusion(
    api: httpx.Client, demo: list[dict[str, Any]]
) -> None:
    items = search(api, q="machine learning models", explain="true", limit=10)["items"]
    explained = [item["explain"] for item in items]
    assert any(e["keyword_rank"] and e["semantic_rank"] for e in explained)
    for item, e in zip(items, explained, strict=True):
        assert 0 <= e["fused_score"] <= 1
        assert item["score"] >= e["fused_score"]
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert search(api, q="machine learning")["items"][0]["explain"] is None
    keyword_only = search(api, q="machine learning", semantic_ratio=0, explain="true")["items"]
    assert all(i["explain"]["semantic_rank"] is None for i in keyword_only)
    semantic_only = search(api, q="machine learning", semantic_ratio=1, explain="true")["items"]
    assert all(i["explain"]["keyword_rank"] is None for i in semantic_only)


def test_highlights_mark_the_matched_words_and_escape_the_rest(
    api: httpx.Client, demo: list[dict[str, Any]]
) -> None:
    hit = search(api, q="data analysis", semantic_ratio=0)["items"][0]
    assert hit["id"] == "demo:data-analysis-pandas"
    assert hit["highlight"]["title"] == "<mark>Data</mark> <mark>Analysis</mark> with pandas"
    assert "<mark>data</mark>" in hit["highlight"]["snippet"].lower()
    course = {
        "id": "search:escaping",
        "title": "Kitchen <b>chemistry</b> & R&D",
        "description": 'Why bread rises: <script>alert("x")</script> chemistry at home.',
        "language": "en",
    }
    assert wait_task(api, accept(api.post("/v1/courses", json=course)))["status"] == "succeeded"
    hit = search(api, q="kitchen chemistry", semantic_ratio=0)["items"][0]
    assert hit["id"] == "search:escaping"
    assert hit["highlight"]["title"] == (
        "<mark>Kitchen</mark> &lt;b&gt;<mark>chemistry</mark>&lt;/b&gt; &amp; R&amp;D"
    )
    snippet = hit["highlight"]["snippet"]
    assert "<script>" not in snippet and "<mark>chemistry</mark>" in snippet


def _sql(stack_env: dict[str, str], query: str, *args: Any) -> list[asyncpg.Record]:
    dsn = stack_env["COURSEWISE_DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")

    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def _counts(facet: list[dict[str, Any]]) -> dict[Any, int]:
    return {entry["value"]: entry["count"] for entry in facet}


def test_facets_count_every_result_under_the_query_and_filters(
    api: httpx.Client, demo: list[dict[str, Any]], stack_env: dict[str, str]
) -> None:
    # Semantic only, under a filter: the counts are those of every result a client can page
    # through (the nearest courses the vector index returns), and each of them passes the filter
    # as PostgreSQL sees it.
    params = {"q": "learn", "free": "false", "semantic_ratio": 1, "facets": FACETS}
    facets = search(api, **params)["facets"]
    items = every_page(api, **params, limit=50)
    paid = {
        row["id"]
        for row in _sql(stack_env, "SELECT id FROM courses WHERE deleted_at IS NULL AND price > 0")
    }
    assert items and {item["id"] for item in items} <= paid
    levels: dict[Any, int] = {}
    for item in items:
        levels[item["level"]] = levels.get(item["level"], 0) + 1
    assert _counts(facets["level"]) == levels
    assert _counts(facets["free"]) == {False: len(items)}
    # Hybrid, with a keyword query: the counts are what paging through every result counts.
    params = {"q": "python data", "level": "beginner", "facets": FACETS, "limit": 3}
    facets = search(api, **params)["facets"]
    items = every_page(api, **params)
    assert items and all(item["level"] == "beginner" for item in items)
    assert _counts(facets["level"]) == {"beginner": len(items)}
    languages: dict[Any, int] = {}
    skills: dict[Any, int] = {}
    for item in items:
        languages[item["language"]] = languages.get(item["language"], 0) + 1
        for skill in item["skills"]:
            skills[skill] = skills.get(skill, 0) + 1
    assert _counts(facets["language"]) == languages
    if len(skills) <= 50:
        assert _counts(facets["skills"]) == skills
    assert sum(_counts(facets["duration"]).values()) == len(items)


@pytest.mark.parametrize("sort", ["relevance", "rating", "newest", "duration", "price"])
def test_sorted_pages_return_every_result_exactly_once(
    api: httpx.Client, demo: list[dict[str, Any]], sort: str
) -> None:
    params = {"q": "learn", "sort": sort, "facets": "level"}
    total = sum(_counts(search(api, **params)["facets"]["level"]).values())
    items = every_page(api, **params, limit=7)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == total
    if sort == "rating":
        keys = [(item["rating"] is None, -(item["rating"] or 0), item["id"]) for item in items]
        assert keys == sorted(keys)
    if sort == "price":
        by_price = [(item["price"] or 0, item["id"]) for item in items]
        assert by_price == sorted(by_price)
    if sort == "relevance":
        scores = [item["score"] for item in items]
        assert scores == sorted(scores, reverse=True)


def test_a_changed_title_is_found_by_both_sides_once_its_task_succeeded(
    api: httpx.Client, demo: list[dict[str, Any]]
) -> None:
    course = next(c for c in demo if c["id"] == "demo:music-theory-basics")
    title = "Harmonica Improvisation for Lighthouse Keepers"
    task = wait_task(api, accept(api.patch(f"/v1/courses/{course['id']}", json={"title": title})))
    assert task["status"] == "succeeded", task
    try:
        for ratio in (0, 1):
            hits = search(api, q=title, semantic_ratio=ratio, explain="true")["items"]
            assert hits[0]["id"] == course["id"] and hits[0]["title"] == title
            side = "keyword_rank" if ratio == 0 else "semantic_rank"
            assert hits[0]["explain"][side] == 1
    finally:
        restore = api.patch(f"/v1/courses/{course['id']}", json={"title": course["title"]})
        wait_task(api, accept(restore))


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"q": "x", "facets": "level,colour"}, ["query", "facets"]),
        ({"q": "x", "sort": "popularity"}, ["query", "sort"]),
        ({"q": "x", "semantic_ratio": "1.5"}, ["query", "semantic_ratio"]),
        ({"q": "x", "semantic_ratio": "-0.1"}, ["query", "semantic_ratio"]),
        ({"q": "x", "semantic_ratio": "nan"}, ["query", "semantic_ratio"]),
        ({"q": "x" * 501}, ["query", "q"]),
        ({"q": "data\x01analysis"}, ["query", "q"]),
        ({"q": "data\nanalysis"}, ["query", "q"]),
    ],
)
def test_bad_search_input_is_a_422_naming_it(
    api: httpx.Client, params: dict[str, Any], loc: list[str]
) -> None:
    response = api.get("/v1/search", params=params)
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert loc in [detail["loc"] for detail in details]


def test_a_cursor_of_another_sort_is_refused(api: httpx.Client, demo: list[dict[str, Any]]) -> None:
    cursor = search(api, q="learn", sort="rating", limit=2)["next_cursor"]
    response = api.get("/v1/search", params={"q": "learn", "sort": "price", "cursor": cursor})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["query", "cursor"]


def _degraded_searches(api: httpx.Client) -> float:
    total = 0.0
    for line in api.get("/metrics").text.splitlines():
        if line.startswith("coursewise_search_degraded_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_without_milvus_search_answers_from_postgresql_then_recovers(
    api: httpx.Client, demo: list[dict[str, Any]], stack: LocalStack
) -> None:
    before = _degraded_searches(api)
    milvus = [p for p in stack.processes if p.name == "milvus" and p.alive()][-1]
    milvus.stop()
    budget = float(stack.env.get("COURSEWISE_SEARCH_SEMANTIC_BUDGET_S", "0.4"))
    try:
        for _ in range(3):
            started = time.monotonic()
            page = search(api, q="Data Analysis with pandas", facets="level")
            assert time.monotonic() - started < budget + 2  # not the 20 s of a stalled client
            assert page["degraded"] == ["semantic"]
            assert page["items"][0]["id"] == "demo:data-analysis-pandas"
            assert page["facets"]["level"]
        # Semantic only asks PostgreSQL for nothing until the semantic side fails; then it does.
        alone = search(api, q="Data Analysis with pandas", semantic_ratio=1)
        assert alone["degraded"] == ["semantic"]
        assert alone["items"][0]["id"] == "demo:data-analysis-pandas"
        assert _degraded_searches(api) >= before + 4
    finally:
        stack.start_milvus(stack.var_dir / "milvus-data")
    deadline = time.monotonic() + 90
    while True:
        page = search(api, q="talk in front of an audience without fear", explain="true")
        if not page["degraded"]:
            break
        assert time.monotonic() < deadline, "search still degraded after Milvus came back"
        time.sleep(1)
    assert any(item["explain"]["semantic_rank"] for item in page["items"])
