"""Course filters: the model clients send, and what each filter means in the three places it is
checked, side by side, so that they cannot drift apart.

- `sql_conditions`: PostgreSQL (listing, popularity), the source of truth;
- `milvus_expression`: Milvus (search, similar courses, recommendation candidates);
- `matches`: Python, on rows read back (an index may lag behind PostgreSQL).

tests/integration/test_filter_translations.py checks, on generated courses and filters against
a real PostgreSQL and a real Milvus, that the three select the same courses. To add a filter:
a field on `CourseFilters`, and its entry in `FILTERS` (a unit test checks each field has one).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, Field, StringConstraints, field_validator
from sqlalchemy import ColumnElement, or_

from shared.catalog.models import Course
from shared.catalog.schemas import Level
from shared.milvus import literal

# Filter values end up in SQL and Milvus expressions: printable text only (Milvus' expression
# parser cannot take control characters, even escaped).
PRINTABLE = r"^[^\u0000-\u001f\u007f]*$"


class CourseFilters(BaseModel):
    """Filters shared by listing, search and similar courses."""

    provider: Annotated[str, StringConstraints(max_length=200, pattern=PRINTABLE)] | None = None
    level: Level | None = None
    language: Annotated[str, StringConstraints(max_length=35, pattern=PRINTABLE)] | None = None
    skill: Annotated[str, StringConstraints(max_length=100, pattern=PRINTABLE)] | None = None
    free: bool | None = None
    max_duration: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)

    @field_validator("skill")
    @classmethod
    def _normalise_skill(cls, value: str | None) -> str | None:
        # Stored skills are stripped and lower-cased by the contract (schemas.Skill).
        return value.strip().lower() if value is not None else None


class FilteredCourse(Protocol):
    """What `matches` reads: a `courses` row, or anything with its attributes."""

    @property
    def provider(self) -> str | None: ...
    @property
    def level(self) -> str | None: ...
    @property
    def language(self) -> str | None: ...
    @property
    def skills(self) -> list[str]: ...
    @property
    def price(self) -> float | None: ...
    @property
    def duration_hours(self) -> float | None: ...


@dataclass(frozen=True)
class Filter:
    """One filter's meaning, given its (JSON) value, in each of the three languages."""

    sql: Callable[[Any], ColumnElement[bool]]
    milvus: Callable[[Any], str]
    python: Callable[[Any, FilteredCourse], bool]


def _equals(field: str) -> Filter:
    """Exact equality with a nullable text field (a course without one never matches)."""
    column = getattr(Course, field)
    return Filter(
        sql=lambda value: column == value,
        milvus=lambda value: f"{field} == {literal(value)}",
        python=lambda value, course: getattr(course, field) == value,
    )


def _is_free(course: FilteredCourse) -> bool:
    return course.price is None or course.price == 0


FILTERS: dict[str, Filter] = {
    "provider": _equals("provider"),
    "level": _equals("level"),
    # Tags compare as written (`pt-BR` is not `pt-br`), as the contract stores them.
    "language": _equals("language"),
    # Containment of the normalised skill among the course's (stored normalised).
    "skill": Filter(
        sql=lambda skill: Course.skills.contains([skill]),
        milvus=lambda skill: f"array_contains(skills, {literal(skill)})",
        python=lambda skill, course: skill in (course.skills or []),
    ),
    # Free: no price, or a price of 0 (prices are never negative).
    "free": Filter(
        sql=lambda free: (
            or_(Course.price.is_(None), Course.price == 0) if free else Course.price > 0
        ),
        milvus=lambda free: (
            "(price is null or price == 0)" if free else "(price is not null and price > 0)"
        ),
        python=lambda free, course: _is_free(course) == free,
    ),
    # A course of unknown duration fits no maximum.
    "max_duration": Filter(
        sql=lambda hours: Course.duration_hours <= hours,
        milvus=lambda hours: f"(duration_hours is not null and duration_hours <= {hours!r})",
        python=lambda hours, course: (
            course.duration_hours is not None and course.duration_hours <= hours
        ),
    ),
}


def active(filters: CourseFilters) -> dict[str, Any]:
    """The filters that are set, by name, with their JSON values (an enum as its value)."""
    return filters.model_dump(mode="json", exclude_none=True)


def sql_conditions(filters: CourseFilters) -> list[ColumnElement[bool]]:
    """SQLAlchemy conditions on `Course`, to AND together."""
    return [FILTERS[name].sql(value) for name, value in active(filters).items()]


def milvus_expression(filters: CourseFilters, exclude_id: str | None = None) -> str:
    """A boolean expression over the collection's scalar fields; empty string means no filter."""
    clauses = [FILTERS[name].milvus(value) for name, value in active(filters).items()]
    if exclude_id is not None:
        clauses.append(f"id != {literal(exclude_id)}")
    return " and ".join(clauses)


def matches(filters: CourseFilters, course: FilteredCourse) -> bool:
    """Whether a course passes the filters."""
    return all(FILTERS[name].python(value, course) for name, value in active(filters).items())
