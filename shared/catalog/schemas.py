"""The public course contract: what clients send, and what they read back."""

import hashlib
import json
import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shared.catalog.fields import BY_NAME, FIELDS

COURSE_ID_PATTERN = r"^[A-Za-z0-9:._-]{1,200}$"
# PostgreSQL text and JSONB cannot hold U+0000.
NO_NUL = r"^[^\u0000]*$"
# Text that is more than whitespace once stripped. The class spells out Unicode White_Space,
# which is what stripping removes, so the schema (ECMA regex) and the validator (Rust regex)
# agree character for character.
_SPACE = r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
SOME_TEXT = rf"^[^\u0000]*[^\u0000{_SPACE}][^\u0000]*$"
MAX_METADATA_BYTES = 16 * 1024

CourseId = Annotated[str, StringConstraints(pattern=COURSE_ID_PATTERN)]
Skill = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=1, max_length=100, pattern=SOME_TEXT
    ),
]
# Metadata is flat: scalars, or lists of scalars (e.g. {"instructor": "...", "tags": [...]}).
_META_SCALAR: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 50,
    "propertyNames": {"minLength": 1, "maxLength": 100, "pattern": NO_NUL},
    "additionalProperties": {
        "anyOf": [*_META_SCALAR["anyOf"], {"type": "array", "maxItems": 100, "items": _META_SCALAR}]
    },
}


class Level(StrEnum):
    beginner = "beginner"
    intermediate = "intermediate"
    advanced = "advanced"
    mixed = "mixed"


def _dedupe(skills: list[str]) -> list[str]:
    return list(dict.fromkeys(skills))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _never_null(schema: dict[str, Any]) -> None:
    """The JSON schema of an optional field that may be omitted but never sent as null."""
    variants = schema.pop("anyOf", [])
    schema.update(next(v for v in variants if v.get("type") != "null"))


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | bool | int)


def _flat_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > 50:
        raise ValueError("metadata holds at most 50 keys")
    for key, item in value.items():
        if not 1 <= len(key) <= 100:
            raise ValueError("metadata keys are 1 to 100 characters")
        scalars = item if isinstance(item, list) else [item]
        if len(scalars) > 100 or not all(_is_scalar(s) for s in scalars):
            raise ValueError(
                f"metadata[{key!r}] must be text, a number, a boolean, null, or a list of at "
                "most 100 of those"
            )
    return value


def _bounded_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
    return value


class _CourseFields(BaseModel):
    """Optional fields shared by a full course and a patch; bounds live in one place."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    provider: (
        Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)] | None
    ) = None
    # The schema promises a little less than the stored limit: normalisation may lengthen a URL.
    url: HttpUrl | None = Field(
        default=None,
        description="http(s) URL of the course page",
        json_schema_extra={"maxLength": 2000},
    )
    language: (
        Annotated[
            str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
        ]
        | None
    ) = Field(default=None, description="BCP 47 tag, e.g. `en` or `pt-BR`")
    level: Level | None = None
    # strict: `true` or "3" is not a number, whatever Python would coerce.
    duration_hours: float | None = Field(
        default=None, ge=0, le=10_000, allow_inf_nan=False, strict=True
    )
    skills: Annotated[list[Skill], Field(max_length=50), AfterValidator(_dedupe)] | None = None
    price: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False, strict=True)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None, description="ISO 4217 code; required when price > 0"
    )
    rating: float | None = Field(default=None, ge=0, le=5, allow_inf_nan=False, strict=True)
    metadata: (
        Annotated[
            dict[str, Any],
            AfterValidator(_flat_metadata),
            AfterValidator(_bounded_metadata),
            WithJsonSchema(METADATA_SCHEMA),
        ]
        | None
    ) = Field(default=None, description="your own flat key/value data, at most 16 KiB as JSON")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text and JSONB cannot hold U+0000.
        if _has_nul(value):
            raise ValueError("text must not contain the NUL character (U+0000)")
        return value

    @field_validator("url", mode="before")
    @classmethod
    def _url_input_length(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > 2000:
            raise ValueError("url must be at most 2000 characters")
        return value

    @field_validator("url")
    @classmethod
    def _url_length(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and len(str(value)) > 2048:
            raise ValueError("url must be at most 2048 characters")
        return value


Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=SOME_TEXT)
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000, pattern=SOME_TEXT),
]


class CourseIn(_CourseFields):
    """A whole course, as sent to `POST /v1/courses` and `POST /v1/courses/bulk`."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"price": {"exclusiveMinimum": 0}}, "required": ["price"]},
            "then": {"properties": {"currency": {"type": "string"}}, "required": ["currency"]},
        }
    )

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
        return {field.name: field.stored(data) for field in FIELDS}


class CoursePatch(_CourseFields):
    """Fields to change on an existing course (`PATCH /v1/courses/{id}`); `null` clears a field."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    # Never null in the schema: they cannot be cleared (the validator says so if one tries).
    title: Title | None = Field(default=None, json_schema_extra=_never_null)
    description: Description | None = Field(default=None, json_schema_extra=_never_null)

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


# CourseOut's fields, each with the attribute of the `courses` row it is read from.
_OUT_ATTRIBUTES = tuple(
    (name, BY_NAME[name].attr if name in BY_NAME else name) for name in CourseOut.model_fields
)


class Highlight(BaseModel):
    """Matched query terms wrapped in `<mark>`…`</mark>`; everything else HTML-escaped."""

    title: str = Field(description="the whole title, matched terms marked")
    snippet: str = Field(description="a passage of the description around the matched terms")


class Explanation(BaseModel):
    """Where a hit came from and how it was ranked (ranks start at 1; null: not a candidate of
    that side)."""

    keyword_rank: int | None
    keyword_score: float | None = Field(description="full-text rank plus title trigram similarity")
    semantic_rank: int | None
    semantic_score: float | None = Field(description="cosine similarity of the embeddings")
    fused_score: float = Field(description="the fusion of both sides, 0..1")
    title_match: Literal["exact", "typo", "prefix"] | None = Field(
        description="the query is the title (normalised), the title up to typos, or its start"
    )


class SearchHit(ScoredCourse):
    score: float = Field(
        description="relevance, higher first: the fused score (0..1) plus 3 for an exact title "
        "match, 2 for the title up to typos, 1 for the start of the title"
    )
    highlight: Highlight | None = None
    explain: Explanation | None = Field(default=None, description="with `explain=true` only")


class FacetCount(BaseModel):
    value: str | bool | None = Field(description="null: the course has no value for the field")
    count: int


class SearchPage(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None
    facets: dict[str, list[FacetCount]] | None = Field(
        default=None,
        description="with `facets=`: counts over every result of the query and filters (all "
        "pages), most frequent first",
    )
    degraded: list[Literal["semantic"]] = Field(
        default_factory=list,
        description="parts of the search that could not take part (answered without them)",
    )


def course_out(row: Any) -> CourseOut:
    """The public view of a `courses` row."""
    return CourseOut(**{name: getattr(row, attribute) for name, attribute in _OUT_ATTRIBUTES})
