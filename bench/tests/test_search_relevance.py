"""The relevance suite's queries and scores: the figures it reports rest on them."""

import json
import random
import re

import numpy as np
import pytest

from bench.search_relevance import (
    PARAPHRASES,
    Query,
    build_queries,
    check_paraphrase,
    load_paraphrases,
    prefix_ceiling,
    prefix_groups,
    rank_of,
    transpose_one,
    two_word_prefix,
    with_interval,
)
from shared.catalog.sources import read_coursera_csv, shared_data_dir


def test_a_typo_swaps_two_adjacent_different_letters_in_one_long_word() -> None:
    rng = random.Random(1)
    for title in ["Machine Learning for All", "Finance for Managers", "Data Science Ethics"]:
        typo = transpose_one(title, rng)
        assert typo is not None and typo != title and len(typo) == len(title)
        changed = [i for i, (a, b) in enumerate(zip(title, typo, strict=True)) if a != b]
        assert len(changed) == 2 and changed[1] == changed[0] + 1
        i = changed[0]
        assert (typo[i], typo[i + 1]) == (title[i + 1], title[i])
        word = next(m for m in re.finditer(r"[A-Za-z]+", title) if m.start() <= i < m.end())
        assert len(word.group()) >= 4
    assert transpose_one("AI in UX", rng) is None  # no word of 4 letters
    assert transpose_one("Book", random.Random(5)) == transpose_one("Book", random.Random(5))


def test_prefixes_are_the_first_two_words_without_punctuation() -> None:
    assert two_word_prefix("Business Strategy: Canvas Analysis") == "Business Strategy"
    assert two_word_prefix("C++ Basics") == "C Basics"
    assert two_word_prefix("Oceanography") is None


def test_a_paraphrase_may_not_use_a_word_of_its_title() -> None:
    check_paraphrase("gothic churches of medieval Europe", "Age of Cathedrals")
    with pytest.raises(ValueError, match="age"):
        check_paraphrase("the AGE of gothic churches", "Age of Cathedrals")


def test_the_paraphrases_file_names_real_courses_and_never_their_title_words() -> None:
    path = shared_data_dir() / "coursera_courses.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    titles = {c["id"]: c["title"] for c in read_coursera_csv(path)}
    queries = load_paraphrases(PARAPHRASES, titles)  # raises on a title word
    assert len(queries) >= 30
    assert len(queries) == len(json.loads(PARAPHRASES.read_text()))  # every course is known


def test_halves_split_each_class_and_titles_shared_by_two_courses_are_left_out() -> None:
    courses = [
        {"id": f"c{i}", "title": f"Course Number {i} Of Many", "skills": ["python"]}
        for i in range(40)
    ]
    courses += [
        {"id": "d1", "title": "Twice Named", "skills": []},
        {"id": "d2", "title": "twice, named!", "skills": []},
    ]
    queries = build_queries(courses, None, seed=3)
    exact = [q for q in queries if q.kind == "exact title"]
    assert {q.target for q in exact} == {f"c{i}" for i in range(40)}
    tuning = {q.target for q in exact if q.half == "tuning"}
    report = {q.target for q in exact if q.half == "report"}
    assert not tuning & report and len(tuning) == len(report) == 20
    assert build_queries(courses, None, seed=3) == queries


def test_ranks_count_the_target_or_any_course_listing_the_skill() -> None:
    items = [{"id": "a", "skills": []}, {"id": "b", "skills": ["sql"]}, {"id": "c", "skills": []}]
    assert rank_of(Query("exact title", "x", target="c"), items) == 3
    assert rank_of(Query("skill", "sql", skill="sql"), items) == 2
    assert rank_of(Query("exact title", "x", target="z"), items) is None


def test_the_interval_holds_the_mean_and_narrows_with_more_queries() -> None:
    rng = np.random.default_rng(0)

    def width(n: int) -> float:
        text = with_interval((rng.random(n) < 0.8).astype(float))
        mean, low, high = map(float, re.findall(r"[\d.]+", text))
        assert low <= mean <= high
        return high - low

    assert width(2000) < width(100) / 2


def test_the_prefix_ceiling_counts_groups_larger_than_a_page_in_the_whole_catalogue() -> None:
    courses = [{"id": f"i{i}", "title": f"Introduction to Topic {i}"} for i in range(20)]
    courses += [{"id": "f", "title": "Finance for Managers"}]
    groups = prefix_groups(courses)
    assert groups == {"introduction to": 20, "finance for": 1}
    sampled = [Query("two-word prefix", "Introduction to", target="i3")]
    assert prefix_ceiling(sampled, groups) == 0.5
    assert prefix_ceiling([Query("two-word prefix", "Finance for", target="f")], groups) == 1.0
