"""The table of course fields names exactly the contract's fields, and its roles hold: the
content fields are the embedded text, every filter has its three translations."""

from typing import Any

import pytest

from shared.catalog.fields import FIELDS, MILVUS, NAMES, course_record
from shared.catalog.filters import FILTERS, CourseFilters
from shared.catalog.models import Course
from shared.catalog.schemas import CourseIn, CourseOut, CoursePatch, content_hash
from shared.milvus import SCALAR_FIELDS, course_schema

BASE: dict[str, Any] = {
    "id": "c1",
    "title": "Intro",
    "description": "About it.",
    "provider": "edX",
    "url": "https://example.org/c1",
    "language": "en",
    "level": "beginner",
    "duration_hours": 3.0,
    "skills": ["python"],
    "price": 10.0,
    "currency": "EUR",
    "rating": 4.5,
    "metadata": {"k": "v"},
}
OTHER: dict[str, Any] = {
    "id": "c2",
    "title": "Advanced",
    "description": "More of it.",
    "provider": "MIT",
    "url": "https://example.org/c2",
    "language": "fr",
    "level": "advanced",
    "duration_hours": 4.0,
    "skills": ["sql"],
    "price": 20.0,
    "currency": "USD",
    "rating": 3.5,
    "metadata": {"k": "w"},
}


def test_the_table_names_the_contract_fields() -> None:
    assert set(NAMES) == set(CourseIn.model_fields)
    assert set(NAMES) - {"id"} == set(CoursePatch.model_fields)
    assert set(NAMES) <= set(CourseOut.model_fields)
    assert set(BASE) == set(NAMES)


def test_each_field_has_a_column() -> None:
    columns = set(Course.__table__.columns.keys())
    for field in FIELDS:
        assert field.name in columns
        assert hasattr(Course, field.attr)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "id"])
def test_content_fields_are_exactly_the_embedded_text(name: str) -> None:
    changed = CourseIn.model_validate({**BASE, name: OTHER[name]}).to_record()
    original = CourseIn.model_validate(BASE).to_record()
    content = next(f for f in FIELDS if f.name == name).content
    assert (content_hash(changed) != content_hash(original)) is content


def test_a_row_reads_back_as_the_record_it_was_written_from() -> None:
    record = CourseIn.model_validate(BASE).to_record()
    row = Course(**{f.attr: record[f.name] for f in FIELDS})
    assert course_record(row) == record


def test_milvus_holds_the_filtered_fields() -> None:
    fields = {f.name for f in course_schema(4).fields}
    assert fields == {"id", "vector", *SCALAR_FIELDS}
    assert set(MILVUS) == {"provider", "level", "language", "skills", "duration_hours", "price"}


def test_every_filter_has_its_translations() -> None:
    assert list(FILTERS) == list(CourseFilters.model_fields)
