"""The course contract as a client meets it: what is accepted, what is rejected and where."""

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.catalog.schemas import (
    MAX_METADATA_BYTES,
    CourseIn,
    CoursePatch,
    content_hash,
    embedding_text,
)

BASE: dict[str, Any] = {
    "id": "coursera:machine-learning",
    "title": "Machine Learning",
    "description": "An introduction to machine learning.",
}


# A validation problem: where (pydantic's loc) and what (its error type).
Problem = tuple[tuple[int | str, ...], str]


def problems(data: dict[str, Any], model: type[BaseModel] = CourseIn) -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(tuple(error["loc"]), error["type"]) for error in caught.value.errors()]


def messages(data: dict[str, Any], model: type[BaseModel] = CourseIn) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [error["msg"] for error in caught.value.errors()]


# --- a valid course ------------------------------------------------------------------------


def test_full_course_round_trips_into_record() -> None:
    record = CourseIn.model_validate(
        {
            **BASE,
            "title": "  Machine Learning  ",
            "provider": "Coursera",
            "url": "https://www.coursera.org/learn/machine-learning",
            "language": "pt-BR",
            "level": "beginner",
            "duration_hours": 54.5,
            "skills": [" Python ", "python", "Linear Algebra", "PYTHON", "linear algebra"],
            "price": 49,
            "currency": "USD",
            "rating": 4.9,
            "metadata": {"instructor": "Andrew Ng", "tags": ["ml"]},
        }
    ).to_record()

    assert record == {
        "id": "coursera:machine-learning",
        "title": "Machine Learning",
        "description": "An introduction to machine learning.",
        "provider": "Coursera",
        "url": "https://www.coursera.org/learn/machine-learning",
        "language": "pt-BR",
        "level": "beginner",
        "duration_hours": 54.5,
        "skills": ["python", "linear algebra"],
        "price": 49.0,
        "currency": "USD",
        "rating": 4.9,
        "metadata": {"instructor": "Andrew Ng", "tags": ["ml"]},
    }
    json.dumps(record)  # JSON-ready: nothing a worker could not serialise


def test_absent_optionals_become_null_empty_list_and_empty_object() -> None:
    record = CourseIn.model_validate(BASE).to_record()

    assert record["skills"] == []
    assert record["metadata"] == {}
    for name in (
        "provider",
        "url",
        "language",
        "level",
        "duration_hours",
        "price",
        "currency",
        "rating",
    ):
        assert record[name] is None, name


def test_free_course_needs_no_currency() -> None:
    assert CourseIn.model_validate({**BASE, "price": 0}).to_record()["price"] == 0


@pytest.mark.parametrize(
    "course_id", ["a", "A-z_0.9:x", "udemy:python-101", "x" * 200], ids=str.__len__
)
def test_accepted_ids(course_id: str) -> None:
    assert CourseIn.model_validate({**BASE, "id": course_id}).id == course_id


@pytest.mark.parametrize("value", [5, 0, 2.5])
def test_rating_bounds_are_inclusive(value: float) -> None:
    assert CourseIn.model_validate({**BASE, "rating": value}).rating == value


@pytest.mark.parametrize("language", ["en", "pt-BR", "zh-Hant-TW", "yue"])
def test_accepted_language_tags(language: str) -> None:
    assert CourseIn.model_validate({**BASE, "language": language}).language == language


def test_length_limits_are_inclusive() -> None:
    course = CourseIn.model_validate(
        {
            **BASE,
            "title": "t" * 300,
            "description": "d" * 20_000,
            "skills": [f"skill {i}" for i in range(50)],
            "metadata": {"k": "a" * (MAX_METADATA_BYTES - 100)},
        }
    )
    assert len(course.title) == 300
    assert len(course.description) == 20_000
    assert len(course.skills or []) == 50


# --- every bound, with its location --------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"id": ""}, (("id",), "string_pattern_mismatch")),
        ({"id": "x" * 201}, (("id",), "string_pattern_mismatch")),
        ({"id": "has space"}, (("id",), "string_pattern_mismatch")),
        ({"id": "a/b"}, (("id",), "string_pattern_mismatch")),
        ({"id": 42}, (("id",), "string_type")),
        ({"title": ""}, (("title",), "string_too_short")),
        ({"title": "   "}, (("title",), "string_too_short")),
        ({"title": "t" * 301}, (("title",), "string_too_long")),
        ({"description": ""}, (("description",), "string_too_short")),
        ({"description": "d" * 20_001}, (("description",), "string_too_long")),
        ({"level": "expert"}, (("level",), "enum")),
        ({"level": "Beginner"}, (("level",), "enum")),
        ({"syllabus": "week 1"}, (("syllabus",), "extra_forbidden")),
        ({"rating": -0.1}, (("rating",), "greater_than_equal")),
        ({"rating": 5.01}, (("rating",), "less_than_equal")),
        ({"price": -1}, (("price",), "greater_than_equal")),
        ({"price": 10, "currency": "usd"}, (("currency",), "string_pattern_mismatch")),
        ({"price": 10, "currency": "US"}, (("currency",), "string_pattern_mismatch")),
        ({"price": 10, "currency": "USDX"}, (("currency",), "string_pattern_mismatch")),
        ({"url": "ftp://example.com/course"}, (("url",), "url_scheme")),
        ({"url": "javascript:alert(1)"}, (("url",), "url_scheme")),
        ({"url": "not a url"}, (("url",), "url_parsing")),
        ({"language": "EN"}, (("language",), "string_pattern_mismatch")),
        ({"language": "english"}, (("language",), "string_pattern_mismatch")),
        ({"language": "en_US"}, (("language",), "string_pattern_mismatch")),
        ({"skills": [f"s{i}" for i in range(51)]}, (("skills",), "too_long")),
        ({"skills": ["  "]}, (("skills", 0), "string_too_short")),
        ({"duration_hours": -1}, (("duration_hours",), "greater_than_equal")),
    ],
    ids=lambda value: json.dumps(value)[:40] if isinstance(value, dict) else None,
)
def test_bound_is_rejected_at_its_field(change: dict[str, Any], expected: Problem) -> None:
    assert problems({**BASE, **change}) == [expected]


@pytest.mark.parametrize("missing", ["id", "title", "description"])
def test_required_fields(missing: str) -> None:
    data = {k: v for k, v in BASE.items() if k != missing}
    assert problems(data) == [((missing,), "missing")]


def test_all_problems_are_reported_together() -> None:
    found = problems({**BASE, "id": "bad id", "rating": 9, "level": "guru", "extra": 1})
    assert sorted(found) == [
        (("extra",), "extra_forbidden"),
        (("id",), "string_pattern_mismatch"),
        (("level",), "enum"),
        (("rating",), "less_than_equal"),
    ]


def test_currency_required_when_price_is_positive() -> None:
    assert problems({**BASE, "price": 19.99}) == [((), "value_error")]
    assert any("currency is required" in m for m in messages({**BASE, "price": 19.99}))


def test_oversized_metadata_is_rejected() -> None:
    data = {**BASE, "metadata": {"k": "a" * (MAX_METADATA_BYTES + 100)}}
    assert problems(data) == [(("metadata",), "value_error")]


def test_metadata_limit_counts_utf8_bytes() -> None:
    metadata = {"k": "é" * 9000}  # ~9 000 characters, ~18 000 bytes
    assert len(json.dumps(metadata, ensure_ascii=False).encode()) > MAX_METADATA_BYTES
    assert problems({**BASE, "metadata": metadata}) == [(("metadata",), "value_error")]


# --- patches -------------------------------------------------------------------------------


def test_patch_must_change_something() -> None:
    assert problems({}, CoursePatch) == [((), "value_error")]
    assert any("at least one field" in m for m in messages({}, CoursePatch))


@pytest.mark.parametrize("field", ["title", "description"])
def test_patch_cannot_clear_required_field(field: str) -> None:
    assert problems({field: None}, CoursePatch) == [((), "value_error")]
    assert any(f"{field} cannot be cleared" in m for m in messages({field: None}, CoursePatch))


def test_patch_can_clear_optional_field_and_reports_only_what_was_sent() -> None:
    patch = CoursePatch.model_validate({"provider": None, "skills": ["SQL", "sql"]})
    assert patch.changes() == {"provider": None, "skills": ["sql"]}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"id": "other"}, (("id",), "extra_forbidden")),
        ({"title": ""}, (("title",), "string_too_short")),
        ({"rating": 6}, (("rating",), "less_than_equal")),
    ],
)
def test_patch_shares_the_course_bounds(change: dict[str, Any], expected: Problem) -> None:
    assert problems(change, CoursePatch) == [expected]


# --- what is embedded ----------------------------------------------------------------------


def _record(**changes: Any) -> dict[str, Any]:
    return CourseIn.model_validate({**BASE, "skills": ["python"], **changes}).to_record()


def test_embedding_text_holds_title_description_and_skills() -> None:
    text = embedding_text(_record(skills=["Python", "SQL"]))
    assert "Machine Learning" in text
    assert "An introduction to machine learning." in text
    assert "python, sql" in text
    assert "Skills" not in embedding_text(_record(skills=[]))


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Deep Learning"},
        {"description": "Something else entirely."},
        {"skills": ["python", "statistics"]},
        {"skills": []},
    ],
    ids=lambda change: next(iter(change)),
)
def test_content_hash_changes_with_embedded_content(change: dict[str, Any]) -> None:
    assert content_hash(_record(**change)) != content_hash(_record())


@pytest.mark.parametrize(
    "change",
    [
        {"price": 99, "currency": "EUR"},
        {"rating": 3},
        {"provider": "edX"},
        {"metadata": {"a": 1}},
        {"skills": ["PYTHON", "python"]},
    ],
    ids=lambda change: next(iter(change)),
)
def test_content_hash_ignores_other_fields(change: dict[str, Any]) -> None:
    assert content_hash(_record(**change)) == content_hash(_record())
