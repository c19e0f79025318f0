"""Recommendations and popular courses as clients read them."""

import re
from datetime import timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from shared.catalog.schemas import CourseOut

WINDOW_PATTERN = r"^[1-9][0-9]{0,3}[hd]$"


def parse_window(window: str) -> timedelta:
    match = re.fullmatch(r"([0-9]+)([hd])", window)
    assert match is not None  # the route validated the pattern
    amount = int(match.group(1))
    return timedelta(hours=amount) if match.group(2) == "h" else timedelta(days=amount)


class ReasonCode(StrEnum):
    similar_to_taken = "similar_to_taken"
    learners_like_you = "learners_like_you"
    matches_interests = "matches_interests"
    popular = "popular"


class Strategy(StrEnum):
    hybrid = "hybrid"
    interests = "interests"
    popular = "popular"


class RecommendedCourse(CourseOut):
    score: float = Field(description="blended score, higher is better (comparable within a list)")
    reason_code: ReasonCode
    reason: str = Field(description="why it is recommended, for display")
    because_of: str | None = Field(
        default=None, description="the learner's course this one is similar to, if that is why"
    )


RECOMMENDATION_ID = Field(
    default=None,
    description=(
        "this list's id: cite it as `recommendation_id` on the interactions it leads to "
        "(online evaluation: impressions, clicks and enrolments per model and reason)"
    ),
)


class RecommendationPage(BaseModel):
    items: list[RecommendedCourse]
    strategy: Strategy = Field(
        description="hybrid (history), interests (profile only) or popular (nothing known)"
    )
    model_version: int | None = Field(description="the ALS model version used, if any")
    recommendation_id: str | None = RECOMMENDATION_ID
    degraded: list[Literal["semantic"]] = Field(
        default_factory=list,
        description="what the answer was computed without: `semantic` when the vector index "
        "(content similarity and the collaborative model) did not answer in time; the list is "
        "then popularity within the filters, the learner's own courses still excluded",
    )


class SimilarReasonCode(StrEnum):
    similar_content = "similar_content"
    taken_together = "taken_together"
    shared_skills = "shared_skills"


class SimilarCourse(CourseOut):
    score: float = Field(
        description="cosine similarity plus co-enrolment and skills overlap, higher is closer"
    )
    similarity: float | None = Field(
        description="cosine similarity of the embeddings; null when the list is degraded"
    )
    taken_together: int = Field(description="learners who took both courses")
    reason_code: SimilarReasonCode
    reason: str = Field(description="why it is similar, for display")


class SimilarPage(BaseModel):
    items: list[SimilarCourse]
    next_cursor: str | None = None
    recommendation_id: str | None = RECOMMENDATION_ID
    degraded: list[Literal["semantic"]] = Field(
        default_factory=list,
        description="what the answer was computed without: `semantic` when the vector index did "
        "not answer in time; the list is then the courses most taken together with this one and "
        "those sharing most of its skills, within the filters",
    )


class PopularCourse(CourseOut):
    learners: int = Field(description="distinct learners who interacted within the window")


class PopularPage(BaseModel):
    items: list[PopularCourse]
    window: str
