"""The public course contract: what clients send, and what they read back."""

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    field_validator,
    model_validator,
)

COURSE_ID_PATTERN = r"^[A-Za-z0-9:._-]{1,200}$"
MAX_METADATA_BYTES = 16 * 1024

CourseId = Annotated[str, StringConstraints(pattern=COURSE_ID_PATTERN)]
Skill = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=100)
]


class Level(StrEnum):
    beginner = "beginner"
    intermediate = "intermediate"
    advanced = "advanced"
    mixed = "mixed"


def _dedupe(skills: list[str]) -> list[str]:
    return list(dict.fromkeys(skills))


def _bounded_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
    return value


class _CourseFields(BaseModel):
    """Optional fields shared by a full course and a patch; bounds live in one place."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    provider: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    url: HttpUrl | None = Field(default=None, description="http(s) URL of the course page")
    language: (
        Annotated[
            str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
        ]
        | None
    ) = Field(default=None, description="BCP 47 tag, e.g. `en` or `pt-BR`")
    level: Level | None = None
    duration_hours: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False)
    skills: Annotated[list[Skill], Field(max_length=50), AfterValidator(_dedupe)] | None = None
    price: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None, description="ISO 4217 code; required when price > 0"
    )
    rating: float | None = Field(default=None, ge=0, le=5, allow_inf_nan=False)
    metadata: Annotated[dict[str, Any], AfterValidator(_bounded_metadata)] | None = None

    @field_validator("url")
    @classmethod
    def _url_length(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and len(str(value)) > 2048:
            raise ValueError("url must be at most 2048 characters")
        return value


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)
]


class CourseIn(_CourseFields):
    """A whole course, as sent to `POST /v1/courses` and `POST /v1/courses/bulk`."""

    id: CourseId = Field(description="client-supplied stable id, e.g. `coursera:machine-learning`")
    title: Title
    description: Description

    @model_validator(mode="after")
    def _currency_with_price(self) -> Self:
        if self.price and self.currency is None:
            raise ValueError("currency is required when price is greater than 0")
        return self

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready row the worker writes; absent optional fields become nulls."""
        data = self.model_dump(mode="json")
        data["skills"] = data["skills"] or []
        data["metadata"] = data["metadata"] or {}
        return data


class CoursePatch(_CourseFields):
    """Fields to change on an existing course (`PATCH /v1/courses/{id}`); `null` clears a field."""

    title: Title | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("a patch must change at least one field")
        for required in ("title", "description"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be cleared")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=self.model_fields_set)


def embedding_text(record: dict[str, Any]) -> str:
    """What is embedded for a course: title, description and skills."""
    parts = [record["title"], record["description"]]
    if record.get("skills"):
        parts.append("Skills: " + ", ".join(record["skills"]))
    return "\n".join(parts)


def content_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(embedding_text(record).encode()).hexdigest()


class CourseOut(BaseModel):
    id: str
    title: str
    description: str
    provider: str | None
    url: str | None
    language: str | None
    level: Level | None
    duration_hours: float | None
    skills: list[str]
    price: float | None
    currency: str | None
    rating: float | None
    metadata: dict[str, Any]
    version: int = Field(description="sequence number of the last write applied to this course")
    index_state: str = Field(description="pending | indexed | failed: is it searchable yet?")
    indexed_version: int | None
    created_at: datetime
    updated_at: datetime


class ScoredCourse(CourseOut):
    score: float = Field(description="cosine similarity to the query, higher is closer")


class CoursePage(BaseModel):
    items: list[CourseOut]
    next_cursor: str | None


class ScoredCoursePage(BaseModel):
    items: list[ScoredCourse]
    next_cursor: str | None


class CourseFilters(BaseModel):
    """Filters shared by listing, search and similar courses."""

    provider: str | None = None
    level: Level | None = None
    language: str | None = None
    skill: str | None = None
    free: bool | None = None
    max_duration: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)

    @field_validator("skill")
    @classmethod
    def _normalise_skill(cls, value: str | None) -> str | None:
        return value.strip().lower() if value is not None else None


def course_out(row: Any) -> CourseOut:
    """The public view of a `courses` row."""
    return CourseOut(
        id=row.id,
        title=row.title,
        description=row.description,
        provider=row.provider,
        url=row.url,
        language=row.language,
        level=row.level,
        duration_hours=row.duration_hours,
        skills=row.skills,
        price=row.price,
        currency=row.currency,
        rating=row.rating,
        metadata=row.metadata_,
        version=row.version,
        index_state=row.index_state,
        indexed_version=row.indexed_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
