"""The evaluation's two modes answer alike: the lists a client gets over HTTP are the lists
`Recommender.recommend` computes in-process, and the lists the tuning scores from candidates."""

import asyncio

import httpx

from bench.evaluate_recs import K, collect, http_lists, ranked, served
from devstack.stack import LocalStack
from shared.recommendations.service import BlendWeights
from shared.settings import Settings
from tests.support.learning import TOPICS, build, retrain


def test_http_in_process_and_evaluated_top_lists_are_the_same(
    api: httpx.Client, stack: LocalStack
) -> None:
    community = build(api)
    retrain(api)
    learners = [community.learner(f"{topic}-fan-{n}") for topic in TOPICS for n in range(6)]
    assert stack.api_key is not None
    over_http = asyncio.run(http_lists(stack.api_url, stack.api_key, learners))
    settings = Settings()  # the stack's own (exported by the fixtures)
    in_process = asyncio.run(served(settings, learners))
    candidates = asyncio.run(collect(settings, learners))
    weights = BlendWeights.from_settings(settings)
    evaluated = {
        learner: ranked(found, weights, settings.rec_own_slots)
        for learner, found in candidates.items()
    }
    for learner in learners:
        assert len(over_http[learner]) >= min(K, len(community.courses) - 3)
        assert over_http[learner] == in_process[learner] == evaluated[learner], learner
