"""Milvus filter expressions built from client-supplied filters, and the stored entity."""

import json
import re

import pytest
from pydantic import ValidationError

from shared.catalog.filters import CourseFilters, milvus_expression
from shared.catalog.schemas import Level
from shared.milvus import entity, literal

# A double-quoted literal as literal() writes it: quote, then escapes or plain characters.
STRING_LITERAL = re.compile(r'"(?:\\.|[^"\\])*"')


def only_literal(expression: str) -> str:
    literals = STRING_LITERAL.findall(expression)
    assert len(literals) == 1, expression
    return literals[0]


def test_no_filter_gives_empty_expression() -> None:
    assert milvus_expression(CourseFilters()) == ""


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (CourseFilters(provider="Coursera"), 'provider == "Coursera"'),
        (CourseFilters(level=Level.advanced), 'level == "advanced"'),
        (CourseFilters(level="mixed"), 'level == "mixed"'),
        (CourseFilters(language="pt-BR"), 'language == "pt-BR"'),
        (CourseFilters(skill="  Machine Learning "), 'array_contains(skills, "machine learning")'),
        (CourseFilters(free=True), "(price is null or price == 0)"),
        (CourseFilters(free=False), "(price is not null and price > 0)"),
        (
            CourseFilters(max_duration=10),
            "(duration_hours is not null and duration_hours <= 10.0)",
        ),
        (
            CourseFilters(max_duration=2.5),
            "(duration_hours is not null and duration_hours <= 2.5)",
        ),
        (
            CourseFilters(max_duration=0),
            "(duration_hours is not null and duration_hours <= 0.0)",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_filter(filters: CourseFilters, expected: str) -> None:
    assert milvus_expression(filters) == expected


def test_free_none_adds_no_price_clause() -> None:
    assert "price" not in milvus_expression(CourseFilters(free=None, provider="x"))


def test_exclude_id_alone() -> None:
    assert milvus_expression(CourseFilters(), exclude_id="udemy:1") == 'id != "udemy:1"'


def test_filters_combine_with_and() -> None:
    expression = milvus_expression(
        CourseFilters(
            provider="edX",
            level="beginner",
            language="en",
            skill="SQL",
            free=False,
            max_duration=3,
        ),
        exclude_id="edx:sql-101",
    )
    assert expression.split(" and ") == [
        'provider == "edX"',
        'level == "beginner"',
        'language == "en"',
        'array_contains(skills, "sql")',
        "(price is not null",
        "price > 0)",
        "(duration_hours is not null",
        "duration_hours <= 3.0)",
        'id != "edx:sql-101"',
    ]


@pytest.mark.parametrize(
    "provider",
    [
        'O"Reilly\\',
        '" or id != "',
        '\\" or true or "',
        "it's",
        "École « polytechnique » 日本",
        "\\",
        '"',
    ],
)
def test_provider_stays_inside_one_string_literal(provider: str) -> None:
    expression = milvus_expression(CourseFilters(provider=provider))
    assert expression.startswith("provider == ")
    value = expression.removeprefix("provider == ")
    assert only_literal(expression) == value  # nothing escapes the literal
    assert json.loads(value) == provider


def test_injection_attempt_does_not_add_clauses() -> None:
    expression = milvus_expression(CourseFilters(provider='x" or provider != "x'), exclude_id="a")
    assert expression.count(" and ") == 1
    assert expression.endswith('and id != "a"')
    assert json.loads(expression.split(" and ")[0].removeprefix("provider == ")) == (
        'x" or provider != "x'
    )


@pytest.mark.parametrize("value", ["Coursera", 'a"b', "a\\b", ""])
def test_literal_round_trips(value: str) -> None:
    assert json.loads(literal(value)) == value


@pytest.mark.parametrize(
    "filters", [CourseFilters(provider="Café"), CourseFilters(skill="ß")], ids=["provider", "skill"]
)
def test_non_ascii_filter_values_are_not_unicode_escaped(filters: CourseFilters) -> None:
    expression = milvus_expression(filters)
    assert "\\u" not in expression
    assert json.loads(only_literal(expression)) in ("Café", "ß")


def test_infinite_max_duration_never_reaches_milvus() -> None:
    try:
        filters = CourseFilters.model_validate({"max_duration": "inf"})
    except ValidationError:
        return  # rejected up front: fine
    assert "inf" not in milvus_expression(filters)


def test_negative_max_duration_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        CourseFilters(max_duration=-1)
    assert [e["loc"] for e in caught.value.errors()] == [("max_duration",)]


def test_entity_carries_scalar_fields_and_defaults() -> None:
    record = {
        "id": "c1",
        "title": "T",
        "description": "D",
        "provider": "edX",
        "level": "advanced",
        "language": "en",
        "skills": ["a", "b"],
        "duration_hours": 3.5,
        "price": 10.0,
    }
    row = entity(record, [0.1, 0.2], 7, "abc")
    assert row == {
        "id": "c1",
        "vector": [0.1, 0.2],
        "version": 7,
        "content_hash": "abc",
        "provider": "edX",
        "level": "advanced",
        "language": "en",
        "skills": ["a", "b"],
        "duration_hours": 3.5,
        "price": 10.0,
    }
    bare = entity({"id": "c2"}, [0.0], 1, "h")
    assert bare["skills"] == []
    assert bare["provider"] is None and bare["price"] is None


@pytest.mark.parametrize("value", ["line\nbreak", "tab\there", "nul\x00", "esc\x1b[0m", "del\x7f"])
def test_control_characters_never_reach_a_filter(value: str) -> None:
    # Refused at the edge (422): Milvus' expression parser cannot take them, even escaped.
    for field in ("provider", "language", "skill"):
        with pytest.raises(ValidationError):
            CourseFilters.model_validate({field: value})
