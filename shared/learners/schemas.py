"""The learner and interaction contract: what clients send, and what they read back."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from shared.catalog.schemas import COURSE_ID_PATTERN, NO_NUL, CourseId, Level

LEARNER_ID_PATTERN = COURSE_ID_PATTERN
LearnerId = Annotated[str, StringConstraints(pattern=LEARNER_ID_PATTERN)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]


def _json_integer(value: object) -> object:
    # JSON `true` and "3" are not numbers, though Python would read them as 1 and 3.
    if isinstance(value, bool) or not isinstance(value, int | float | None):
        raise ValueError("expected an integer")
    return value


def _text_date(value: object) -> object:
    # A bare number would be read as a Unix time; the contract is an RFC 3339 string.
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("expected an RFC 3339 date-time string")
    return value


class InteractionType(StrEnum):
    view = "view"
    enroll = "enroll"
    complete = "complete"
    rate = "rate"
    bookmark = "bookmark"


class LearnerIn(BaseModel):
    """A learner profile (`PUT /v1/users/{id}`); every field is optional."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    interests: Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)] | None = Field(
        default=None, description="free text, e.g. `machine learning for biology`"
    )
    level: Level | None = Field(default=None, description="preferred course level")
    language: (
        Annotated[
            str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
        ]
        | None
    ) = Field(default=None, description="preferred language, BCP 47")

    def to_record(self, learner_id: str) -> dict[str, Any]:
        return {"id": learner_id, **self.model_dump(mode="json")}


class InteractionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        # What the validators below enforce, stated in the schema for clients and fuzzers.
        json_schema_extra={
            "if": {"properties": {"type": {"const": "rate"}}, "required": ["type"]},
            "then": {
                "properties": {"value": {"type": "integer", "minimum": 1, "maximum": 5}},
                "required": ["value"],
            },
            "else": {"properties": {"value": {"type": "null"}}},
        },
    )

    user_id: LearnerId
    course_id: CourseId
    type: InteractionType
    value: Annotated[int | None, BeforeValidator(_json_integer)] = Field(
        default=None, validate_default=True, description="1-5, for `rate` only (required there)"
    )
    occurred_at: Annotated[datetime | None, BeforeValidator(_text_date)] = Field(
        default=None, description="when it happened (timezone-aware); defaults to acceptance"
    )
    event_id: EventId | None = Field(
        default=None, description="client id of the event: the same id for a learner counts once"
    )
    recommendation_id: EventId | None = Field(
        default=None,
        description=(
            "the `recommendation_id` of the list the learner acted on (recommendations or similar "
            "courses), for online evaluation; an unknown id is accepted but not attributed, "
            "another learner's list is refused"
        ),
    )

    @field_validator("value")
    @classmethod
    def _value_for_rate(cls, value: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("type")
        if kind == InteractionType.rate:
            if value is None:
                raise ValueError("a rating needs a value from 1 to 5")
            if not 1 <= value <= 5:
                raise ValueError("a rating's value must be from 1 to 5")
        elif value is not None:
            raise ValueError("value is only allowed for type 'rate'")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("occurred_at needs a timezone, e.g. 2026-01-31T12:00:00Z")
        return value

    def to_record(self, accepted_at: datetime) -> dict[str, Any]:
        record = self.model_dump(mode="json")
        record["occurred_at"] = (self.occurred_at or accepted_at).astimezone(UTC).isoformat()
        return record


class InteractionCounts(BaseModel):
    view: int = 0
    enroll: int = 0
    complete: int = 0
    rate: int = 0
    bookmark: int = 0


class LearnerOut(BaseModel):
    id: str
    interests: str | None
    level: Level | None
    language: str | None
    interactions: InteractionCounts
    last_interaction_at: datetime | None
    created_at: datetime
    updated_at: datetime
