"""Recommendations: seen courses excluded, filters, cold start, freshness, retraining."""

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from pymilvus import AsyncMilvusClient

from api import deps
from devstack.stack import free_port
from shared.catalog.search import CourseSearch
from shared.embedding import get_embedder
from shared.milvus import client_kwargs
from shared.recommendations.service import Recommender
from shared.settings import Settings
from tests.support.http import accept, wait_task
from tests.support.inprocess import running
from tests.support.learning import Community, build, interact, popular_elsewhere, retrain


@pytest.fixture(scope="module")
def community(api: httpx.Client) -> Community:
    community = build(api)
    retrain(api)
    return community


def recommend(api: httpx.Client, learner: str, **params: str | int) -> dict[str, Any]:
    response = api.get(f"/v1/users/{learner}/recommendations", params={"limit": 8, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_learner_gets_their_topic_and_never_what_they_took(
    api: httpx.Client, community: Community
) -> None:
    learner = community.learner(f"data-{uuid.uuid4().hex[:6]}")
    data = community.ids("data")
    interact(
        api,
        [
            {"user_id": learner, "course_id": data[0], "type": "enroll"},
            {"user_id": learner, "course_id": data[1], "type": "complete"},
        ],
    )
    body = recommend(api, learner)
    assert body["strategy"] == "hybrid" and body["degraded"] == []
    assert body["model_version"] is not None
    ids = [item["id"] for item in body["items"]]
    assert data[0] not in ids and data[1] not in ids
    # A data course comes first: popularity alone would not put it there.
    assert body["items"][0]["metadata"].get("topic") == "data", body["items"]
    for item in body["items"]:
        assert item["reason"] and item["reason_code"]
        assert isinstance(item["score"], float)
    # It is there for the learner's own history, not for its popularity.
    assert body["items"][0]["reason_code"] in ("similar_to_taken", "learners_like_you")
    similar = [i for i in body["items"] if i["reason_code"] == "similar_to_taken"]
    assert all(i["because_of"] in data[:2] for i in similar)


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"level": "beginner"}, lambda c: c["level"] == "beginner"),
        ({"language": "es"}, lambda c: c["language"] == "es"),
        ({"free": "true"}, lambda c: not c["price"]),
        ({"free": "false", "language": "es"}, lambda c: c["price"] and c["language"] == "es"),
    ],
)
def test_filters_hold(
    api: httpx.Client, community: Community, params: dict[str, str], predicate: object
) -> None:
    learner = community.learner("music-fan-0")
    for who in (learner, "nobody-knows-me"):
        body = recommend(api, who, **params)
        assert body["items"], params
        assert all(predicate(item) for item in body["items"]), body["items"]  # type: ignore[operator]
    popular = api.get("/v1/courses/popular", params={"window": "7d", **params}).json()
    assert popular["items"] and all(predicate(i) for i in popular["items"])  # type: ignore[operator]


def test_cold_start(api: httpx.Client, community: Community) -> None:
    unknown = recommend(api, f"never-seen-{uuid.uuid4().hex[:6]}")
    assert unknown["strategy"] == "popular"
    assert unknown["items"] and all(i["reason_code"] == "popular" for i in unknown["items"])
    learners = [i["learners"] for i in api.get("/v1/courses/popular").json()["items"]]
    assert learners == sorted(learners, reverse=True) and learners[0] >= 6

    learner = community.learner(f"newcomer-{uuid.uuid4().hex[:6]}")
    profile = {"interests": "playing songs on the guitar and piano"}
    assert wait_task(api, accept(api.put(f"/v1/users/{learner}", json=profile)))["status"] == (
        "succeeded"
    )
    body = recommend(api, learner, limit=3)
    assert body["strategy"] == "interests"
    ours = [i for i in body["items"] if i["id"].startswith(community.prefix)]
    assert ours and all(i["metadata"]["topic"] == "music" for i in ours), body["items"]
    assert any(i["reason_code"] == "matches_interests" for i in body["items"])


def test_a_new_interaction_counts_at_once(api: httpx.Client, community: Community) -> None:
    learner = community.learner(f"switcher-{uuid.uuid4().hex[:6]}")
    data, cooking = community.ids("data"), community.ids("cooking")
    interact(api, [{"user_id": learner, "course_id": data[0], "type": "enroll"}])
    before = recommend(api, learner)
    interact(
        api,
        [
            {"user_id": learner, "course_id": cooking[0], "type": "complete"},
            {"user_id": learner, "course_id": cooking[1], "type": "enroll"},
        ],
    )
    after = recommend(api, learner)
    assert after["model_version"] == before["model_version"]  # no retrain in between
    ids = [i["id"] for i in after["items"]]
    assert cooking[0] not in ids and cooking[1] not in ids
    topics = [i["metadata"].get("topic") for i in after["items"][:4]]
    assert "cooking" in topics and ids != [i["id"] for i in before["items"]]


def test_retrain_produces_a_new_version_and_changes_recommendations(
    api: httpx.Client, community: Community
) -> None:
    learner = community.learner("cooking-fan-0")
    # New evidence: cooking fans also take a music course.
    music = community.ids("music")
    interact(
        api,
        [
            {"user_id": community.learner(f"cooking-fan-{n}"), "course_id": music[2],
             "type": "complete"}
            for n in range(1, 6)
        ],
    )  # fmt: skip
    before = recommend(api, learner)
    task = retrain(api)
    assert task["type"] == "model.retrain"
    after = recommend(api, learner)
    assert after["model_version"] > before["model_version"]
    # Only the model changed in between (same interactions, same popularity).
    scores = lambda page: {i["id"]: i["score"] for i in page["items"]}  # noqa: E731
    assert scores(after) != scores(before)


@pytest.fixture(scope="module")
def elsewhere(api: httpx.Client) -> Community:
    return popular_elsewhere(api)


@pytest.mark.parametrize(
    "history",
    [[("enroll", 0)], [("enroll", 0), ("complete", 1)]],
    ids=["one course", "two courses"],
)
def test_a_learners_own_subject_shows_even_when_popular_courses_are_about_others(
    api: httpx.Client, elsewhere: Community, history: list[tuple[str, int]]
) -> None:
    catalog = elsewhere
    niche, mainstream = catalog.ids("niche"), catalog.ids("mainstream")
    popular = api.get("/v1/courses/popular", params={"limit": 10, "window": "30d"}).json()
    # Popularity alone would show none of the niche.
    assert not {item["id"] for item in popular["items"]} & set(niche), popular
    assert len(mainstream) >= 10
    learner = catalog.learner(f"new-{uuid.uuid4().hex[:6]}")
    interact(
        api,
        [{"user_id": learner, "course_id": niche[k], "type": kind} for kind, k in history],
    )
    body = recommend(api, learner, limit=10)
    assert body["strategy"] == "hybrid"
    shown = [item for item in body["items"] if item["id"] in niche]
    assert shown, [item["title"] for item in body["items"]]
    # There for the learner's own courses, and said so.
    assert all(item["reason_code"] != "popular" for item in shown), shown
    similar = [item for item in shown if item["reason_code"] == "similar_to_taken"]
    assert all(item["because_of"] in [niche[k] for _, k in history] for item in similar), shown


def test_popularity_follows_every_write_at_once(api: httpx.Client) -> None:
    """Popularity is kept between reads, by the count of changes to the rows: each write (new
    enrolments, a learner's erasure) shows in the very next list."""
    provider = f"memo-{uuid.uuid4().hex[:6]}"
    courses = [
        {"id": f"{provider}:{n}", "title": title, "description": f"{title}, step by step.",
         "provider": provider}
        for n, title in enumerate(["Watercolour painting", "Oil painting", "Sketching"])
    ]  # fmt: skip
    assert wait_task(api, accept(api.post("/v1/courses/bulk", json=courses)))["status"] == (
        "succeeded"
    )
    first, second, third = (course["id"] for course in courses)
    takers = {first: 1, second: 2, third: 0}
    interact(
        api,
        [
            {"user_id": f"{provider}-{course_id}-{n}", "course_id": course_id, "type": "enroll"}
            for course_id, count in takers.items()
            for n in range(count)
        ],
    )

    def shown() -> list[str]:
        body = recommend(api, f"{provider}-nobody", provider=provider)
        assert body["strategy"] == "popular"
        return [item["id"] for item in body["items"]]

    assert shown() == [second, first]
    assert shown() == [second, first]  # the same rows, the same list
    # Dated before the newest interaction, so the popularity window stays where it was: only
    # the rows changed.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    crowd = [f"{provider}-crowd-{n}" for n in range(3)]
    interact(
        api,
        [
            {"user_id": who, "course_id": third, "type": "enroll", "occurred_at": yesterday}
            for who in crowd
        ],
    )
    assert shown() == [third, second, first]
    for who in crowd:
        assert wait_task(api, accept(api.delete(f"/v1/users/{who}")))["status"] == "succeeded"
    assert shown() == [second, first]


def test_every_change_to_courses_or_interactions_is_counted(
    stack_env: dict[str, str], community: Community
) -> None:
    """The count the read side keys its memos by rises with each statement that changes course
    or interaction rows, in that statement's transaction, and not for a statement that changes
    none. (Checked inside a transaction that is rolled back: nothing stays.)"""
    dsn = stack_env["COURSEWISE_DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")
    course = community.ids("data")[0]
    learner = community.learner("data-fan-0")

    async def run() -> list[int]:
        connection = await asyncpg.connect(dsn)
        seen = []
        try:
            transaction = connection.transaction()
            await transaction.start()
            for statement, arg in [
                ("SELECT 1 WHERE $1::text IS NOT NULL", course),
                ("UPDATE courses SET title = title || '' WHERE id = $1", course),
                ("UPDATE courses SET title = title WHERE id = $1 AND false", course),
                ("DELETE FROM interactions WHERE learner_id = $1", learner),
                ("DELETE FROM interactions WHERE learner_id = $1", learner),  # none left
            ]:
                await connection.execute(statement, arg)
                seen.append(await connection.fetchval("SELECT changes FROM data_changes"))
            await transaction.rollback()
        finally:
            await connection.close()
        return seen

    counts = asyncio.run(run())
    assert [b - a for a, b in itertools.pairwise(counts)] == [1, 0, 1, 0], counts


def without_milvus(paths: list[tuple[str, dict[str, str | int]]]) -> list[dict[str, Any]]:
    """GET each path on the same database through an app whose Milvus does not answer (nothing
    listens on its port); every answer must be a 200."""

    async def run() -> list[dict[str, Any]]:
        settings = Settings(milvus_uri=f"http://127.0.0.1:{free_port()}")
        async with running(settings) as app:
            milvus = AsyncMilvusClient(**client_kwargs(settings))
            search = CourseSearch(milvus, settings.milvus_collection, get_embedder(settings))
            recommender = Recommender(milvus, settings, search)

            async def _recommender() -> Recommender:
                return recommender

            app.app.dependency_overrides[deps._recommender] = _recommender
            bodies = []
            async with app.client(app.admin_key) as client:
                for path, params in paths:
                    response = await client.get(path, params=params)
                    assert response.status_code == 200, response.text
                    bodies.append(response.json())
            await milvus.close()
            return bodies

    return asyncio.run(run())


def test_without_the_vector_index_a_learner_gets_popularity_and_is_told(
    api: httpx.Client, community: Community
) -> None:
    """The list is popularity within the filters, the learner's courses still excluded, and
    says it was computed without the vector index."""
    learner = community.learner("data-fan-0")
    taken = set(community.ids("data")[:3])  # build(): fan n took courses n, n+1 and n+2
    served = recommend(api, learner)
    assert served["strategy"] == "hybrid" and served["degraded"] == []

    path = f"/v1/users/{learner}/recommendations"
    bodies = without_milvus([(path, {"limit": 8}), (path, {"limit": 8, "language": "es"})])
    for body in bodies:
        assert body["strategy"] == "popular" and body["degraded"] == ["semantic"], body
        assert body["model_version"] is None and body["recommendation_id"]
        ids = [item["id"] for item in body["items"]]
        assert ids and not taken & set(ids), ids
        assert all(item["reason_code"] == "popular" for item in body["items"])
    assert all(item["language"] == "es" for item in body["items"])  # the filter still holds


def test_without_the_vector_index_similar_courses_are_the_co_taken_and_skill_sharing(
    api: httpx.Client, community: Community
) -> None:
    """/similar from PostgreSQL alone: the courses its learners also took, and courses sharing
    its skills, each with its reason, no cosine, and said so."""
    data = community.ids("data")
    prefix = f"k{uuid.uuid4().hex[:6]}"
    # Skills of this test's own (other tests' catalogues share the database).
    skilled = [
        (f"{prefix}:source", "Telescope making", ["optics", "mirror grinding", "astronomy"]),
        (f"{prefix}:two", "Lens design", ["optics", "mirror grinding"]),
        (f"{prefix}:one", "Night sky", ["astronomy"]),
        (f"{prefix}:none", "Wheel pottery", ["pottery"]),
    ]
    courses = [
        {
            "id": i,
            "title": title,
            "description": title,
            "skills": [f"{prefix} {skill}" for skill in skills],
            "level": "beginner",
        }
        for i, title, skills in skilled
    ]
    task = wait_task(api, accept(api.post("/v1/courses/bulk", json=courses)))
    assert task["status"] == "succeeded", task
    served = api.get(f"/v1/courses/{data[1]}/similar", params={"limit": 5}).json()
    assert served["degraded"] == [] and all(i["similarity"] is not None for i in served["items"])

    source = f"{prefix}:source"
    co, by_skills, filtered = without_milvus(
        [
            (f"/v1/courses/{data[1]}/similar", {"limit": 5}),
            (f"/v1/courses/{source}/similar", {"limit": 5}),
            (f"/v1/courses/{data[1]}/similar", {"limit": 5, "language": "es"}),
        ]
    )
    for body in (co, by_skills, filtered):
        assert body["degraded"] == ["semantic"] and body["recommendation_id"], body
        assert all(item["similarity"] is None for item in body["items"]), body
    # build(): every other data course shares learners with data-1, no other course does.
    assert {item["id"] for item in co["items"]} == set(data) - {data[1]}, co
    assert all(item["reason_code"] == "taken_together" for item in co["items"]), co
    together = [item["taken_together"] for item in co["items"]]
    assert min(together) > 0 and together == sorted(together, reverse=True), co
    # Most shared skills first; a course sharing none is not there.
    assert [item["id"] for item in by_skills["items"]] == [f"{prefix}:two", f"{prefix}:one"]
    assert all(item["reason_code"] == "shared_skills" for item in by_skills["items"])
    assert "optics" in by_skills["items"][0]["reason"]
    assert filtered["items"] and all(item["language"] == "es" for item in filtered["items"])
