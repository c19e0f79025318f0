"""Online evaluation: served lists carry a recommendation_id; interactions citing it are counted
against the model and reason that showed the course; another learner's list is refused."""

import uuid
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack
from tests.support.learning import Community, build, interact, retrain
from tests.support.metrics import Samples, scrape, value


@pytest.fixture(scope="module")
def community(api: httpx.Client) -> Community:
    community = build(api)
    retrain(api)
    return community


def metrics(stack: LocalStack) -> Samples:
    return scrape(f"{stack.api_url}/metrics")


def recommendations(api: httpx.Client, learner: str) -> dict[str, Any]:
    response = api.get(f"/v1/users/{learner}/recommendations", params={"limit": 5})
    assert response.status_code == 200, response.text
    return response.json()


def test_clicks_and_enrolments_count_against_the_reason_shown(
    stack: LocalStack, api: httpx.Client, community: Community
) -> None:
    learner = community.learner(f"tracked-{uuid.uuid4().hex[:6]}")
    interact(api, [{"user_id": learner, "course_id": community.ids("data")[0], "type": "enroll"}])
    before = metrics(stack)
    page = recommendations(api, learner)
    assert page["recommendation_id"] and page["items"]
    again = recommendations(api, learner)
    assert again["recommendation_id"] != page["recommendation_id"]  # one id per list served
    chosen = page["items"][0]
    labels = {"list": "recommendations", "model": page["strategy"], "reason": chosen["reason_code"]}
    cite = {
        "user_id": learner,
        "course_id": chosen["id"],
        "recommendation_id": page["recommendation_id"],
    }
    task = interact(api, [{**cite, "type": "view"}, {**cite, "type": "enroll"}])
    assert task["status"] == "succeeded" and task["counts"]["applied"] == 2, task
    after = metrics(stack)

    def moved(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    shown = sum(
        1 for item in page["items"] + again["items"] if item["reason_code"] == labels["reason"]
    )
    assert moved("coursewise_recommendation_impressions_total") == shown
    assert moved("coursewise_recommendation_interactions_total", type="view") == 1
    assert moved("coursewise_recommendation_interactions_total", type="enroll") == 1
    # The enrolment counts as one: the course is no longer recommended to them.
    assert chosen["id"] not in [i["id"] for i in recommendations(api, learner)["items"]]


def test_another_learners_list_is_refused_and_nothing_is_queued(
    api: httpx.Client, community: Community
) -> None:
    owner = community.learner(f"owner-{uuid.uuid4().hex[:6]}")
    interact(api, [{"user_id": owner, "course_id": community.ids("music")[0], "type": "enroll"}])
    page = recommendations(api, owner)
    before = api.get("/v1/tasks", params={"type": "interaction.batch", "limit": 1}).json()
    response = api.post(
        "/v1/interactions",
        json=[
            {"user_id": owner, "course_id": page["items"][0]["id"], "type": "view",
             "recommendation_id": page["recommendation_id"]},
            {"user_id": "someone-else", "course_id": page["items"][0]["id"], "type": "view",
             "recommendation_id": page["recommendation_id"]},
        ],
    )  # fmt: skip
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [["body", 1, "recommendation_id"]]
    after = api.get("/v1/tasks", params={"type": "interaction.batch", "limit": 1}).json()
    assert after["items"][0]["task_id"] == before["items"][0]["task_id"]


def test_an_unknown_id_or_a_course_outside_the_list_is_accepted_and_counted_unattributed(
    stack: LocalStack, api: httpx.Client, community: Community
) -> None:
    learner = community.learner(f"stray-{uuid.uuid4().hex[:6]}")
    cooking = community.ids("cooking")
    interact(api, [{"user_id": learner, "course_id": cooking[0], "type": "enroll"}])
    page = recommendations(api, learner)
    outside = next(c for c in community.ids("data") if c not in {i["id"] for i in page["items"]})
    before = metrics(stack)
    task = interact(
        api,
        [
            {"user_id": learner, "course_id": cooking[1], "type": "view",
             "recommendation_id": "rec_does-not-exist"},
            {"user_id": learner, "course_id": outside, "type": "view",
             "recommendation_id": page["recommendation_id"]},
        ],
    )  # fmt: skip
    assert task["status"] == "succeeded" and task["counts"]["applied"] == 2, task
    after = metrics(stack)
    name = "coursewise_recommendation_unattributed_total"
    for why in ("unknown_list", "not_in_list"):
        assert value(after, name, why=why) - value(before, name, why=why) == 1, why


def test_a_similar_list_carries_reasons_and_any_learner_may_cite_it(
    stack: LocalStack, api: httpx.Client, community: Community
) -> None:
    data = community.ids("data")
    response = api.get(f"/v1/courses/{data[0]}/similar", params={"limit": 5})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["recommendation_id"] and page["items"]
    assert all(item["reason"] and item["reason_code"] for item in page["items"])
    chosen = page["items"][0]
    labels = {"list": "similar", "model": "similar", "reason": chosen["reason_code"]}
    before = metrics(stack)
    learner = community.learner(f"browser-{uuid.uuid4().hex[:6]}")
    cite = {"recommendation_id": page["recommendation_id"], "type": "view"}
    task = interact(api, [{"user_id": learner, "course_id": chosen["id"], **cite}])
    assert task["status"] == "succeeded", task
    after = metrics(stack)
    name = "coursewise_recommendation_interactions_total"
    assert (
        value(after, name, **labels, type="view") - value(before, name, **labels, type="view") == 1
    )
