"""The recommendation evaluation's split and its uncertainty: the figures docs/recommendations.md
reports (and the goal's verdict) rest on them."""

import numpy as np
import pytest

from bench.evaluate_recs import Scores, halves, interval, ratio_draws, split


def scores(gains: list[float]) -> Scores:
    return Scores(hits=[float(g > 0) for g in gains], gains=gains)


def test_split_holds_out_the_last_course_of_learners_with_two_or_more() -> None:
    train, held_out = split({"a": ["c1", "c2", "c3"], "b": ["c4"], "c": ["c5", "c6"]})
    assert held_out == {"a": "c3", "c": "c6"}
    assert sorted(train) == [("a", "c1"), ("a", "c2"), ("b", "c4"), ("c", "c5")]


def test_halves_are_disjoint_and_cover_the_evaluated_learners() -> None:
    held_out = {f"l{i:03d}": "c" for i in range(101)}
    tune, report = halves(held_out, None)
    assert not set(tune) & set(report)
    assert sorted(tune + report) == sorted(held_out)
    assert abs(len(tune) - len(report)) <= 1
    tune, report = halves(held_out, 40)
    assert len(tune) + len(report) == 40


def test_ratio_draws_pair_learners() -> None:
    # Gains that move together: the ratio is the same in every resample, so no spread at all,
    # although each list alone varies a lot from learner to learner.
    rng = np.random.default_rng(1)
    base = list(rng.random(500))
    draws = ratio_draws(scores([2 * g for g in base]), scores(base))
    assert np.allclose(draws, 2.0)
    assert interval(draws) == "2.00-2.00"


def test_ratio_draws_spread_shrinks_with_more_learners() -> None:
    rng = np.random.default_rng(2)

    def width(n: int) -> float:
        model = scores(list(rng.random(n) < 0.2))
        baseline = scores(list(rng.random(n) < 0.2))
        low, high = np.percentile(ratio_draws(model, baseline), [2.5, 97.5])
        assert low < 1.0 < high  # two samples of the same rate: 1x is inside the interval
        return float(high - low)

    assert width(4000) < width(250) / 2


def test_ratio_draws_refuse_lists_of_other_learners() -> None:
    with pytest.raises(AssertionError):
        ratio_draws(scores([1.0, 0.0]), scores([1.0]))
