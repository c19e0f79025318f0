"""Ranking rules of hybrid search: title matches, fusion, sort keys and facets."""

import time
from datetime import UTC, datetime

import pytest

from shared.catalog.keyword import Candidate, _marked
from shared.catalog.ranking import (
    SortField,
    edit_distance,
    facet_counts,
    fuse,
    key_shape_matches,
    title_match,
)
from shared.catalog.search import CircuitBreaker


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("python", "python", 0), ("pyhton", "python", 1), ("pyton", "python", 1), ("ab", "ba", 1)],
)
def test_an_adjacent_transposition_is_one_edit(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b, bound=2) == distance


@pytest.mark.parametrize(
    ("query", "title", "match"),
    [
        ("data analysis with pandas", "data analysis with pandas", "exact"),
        ("data anlaysis with pandas", "data analysis with pandas", "typo"),
        ("dta analysis with pandas", "data analysis with pandas", "typo"),
        # Short words allow no edit: "a" for "i" is another word, not a typo.
        ("statistics a", "statistics i", None),
        ("data analysis", "data analysis with pandas", "prefix"),
        ("data", "data analysis with pandas", None),
        ("pandas analysis", "data analysis with pandas", None),
    ],
)
def test_title_match(query: str, title: str, match: str | None) -> None:
    assert title_match(query, title) == match


def test_fusion_rewards_agreement_and_follows_the_ratio() -> None:
    keyword = [("a", 3.0), ("b", 2.0), ("d", 1.0)]
    semantic = [("b", 0.9), ("c", 0.5), ("e", 0.1)]
    for method in ("rrf", "score"):
        fused = fuse(keyword, semantic, 0.5, method)
        assert max(fused, key=fused.__getitem__) == "b"
        assert all(0 <= value <= 1 for value in fused.values())
        assert set(fuse(keyword, semantic, 0.0, method)) == {"a", "b", "c", "d", "e"}
        only_keyword = fuse(keyword, semantic, 0.0, method)
        assert only_keyword["c"] == 0 and only_keyword["a"] == 1


def test_a_cursor_key_must_have_the_shape_of_its_sort() -> None:
    assert key_shape_matches([-3.5, "demo:a"], SortField.relevance)
    assert not key_shape_matches([True, "demo:a"], SortField.relevance)
    assert key_shape_matches([False, -4.5, "demo:a"], SortField.rating)
    assert not key_shape_matches(["x", -4.5, "demo:a"], SortField.rating)


def test_facets_count_values_most_frequent_first() -> None:
    def course(i: int, level: str | None, price: float | None, hours: float | None) -> Candidate:
        return Candidate(
            f"c{i}",
            "t",
            None,
            "en",
            level,
            ["sql", "python"][: i % 3],
            hours,
            price,
            None,
            datetime.now(UTC),
        )

    items = [course(1, "beginner", None, 1), course(2, "beginner", 10, 3), course(3, None, 0, None)]
    counts = facet_counts(items, ["level", "free", "duration", "skills"])
    assert counts["level"] == [("beginner", 2), (None, 1)]
    assert counts["free"] == [(True, 2), (False, 1)]
    assert counts["duration"] == [("0-2", 1), ("2-5", 1), (None, 1)]
    assert counts["skills"] == [("sql", 2), ("python", 1)]


def test_highlights_escape_everything_but_the_marks() -> None:
    assert _marked("\ue000R&D\ue001 <b>") == "<mark>R&amp;D</mark> &lt;b&gt;"


def test_the_breaker_skips_after_a_failure_then_lets_one_request_probe() -> None:
    breaker = CircuitBreaker(cooldown_s=0.05, probe_s=10)
    assert breaker.allows()
    breaker.failed()
    assert not breaker.allows()
    time.sleep(0.06)
    assert breaker.allows()  # the probe
    assert not breaker.allows()  # the others, while it runs
    breaker.succeeded()
    assert breaker.allows() and breaker.allows()
