"""Online evaluation: every served list gets an id (`recommendation_id`), recorded with the
reason of each of its courses; an interaction may cite it, and is then counted against the model
and reason that showed the course (shared/metrics.py). A record, not a signed id: attribution by
reason needs the list's contents, and the record makes "another learner's list" checkable
before the write is accepted."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import ErrorDetail
from shared.learners.schemas import InteractionIn
from shared.metrics import (
    RECOMMENDATION_IMPRESSIONS,
    RECOMMENDATION_OUTCOMES,
    RECOMMENDATION_UNATTRIBUTED,
)
from shared.recommendations.repository import IssuedList, IssuedListRepository

RECOMMENDATIONS = "recommendations"
SIMILAR = "similar"


def new_id() -> str:
    return f"rec_{uuid.uuid4().hex}"


async def issue(
    session: AsyncSession,
    *,
    surface: str,
    learner_id: str | None,
    strategy: str,
    model_version: int | None,
    reasons: Sequence[tuple[str, str]],
) -> str:
    """Record a list about to be served, committed before it is (an interaction citing it may
    arrive at once), and count its impressions; returns its id."""
    issued = IssuedList(
        id=new_id(),
        surface=surface,
        learner_id=learner_id,
        strategy=strategy,
        model_version=model_version,
        reasons=dict(reasons),
    )
    await IssuedListRepository(session).record(issued)
    await session.commit()
    for _, reason in reasons:
        RECOMMENDATION_IMPRESSIONS.labels(surface, strategy, reason).inc()
    return issued.id


@dataclass(frozen=True)
class Citation:
    """What an accepted interaction citing a list counts as."""

    list: IssuedList | None
    course_id: str
    type: str


async def check_citations(
    session: AsyncSession, interactions: Sequence[InteractionIn]
) -> tuple[list[ErrorDetail], list[Citation]]:
    """Problems (citing another learner's list: refused) and what to count once accepted."""
    cited = [i.recommendation_id for i in interactions if i.recommendation_id is not None]
    if not cited:
        return [], []
    known = await IssuedListRepository(session).get_many(cited)
    problems: list[ErrorDetail] = []
    citations: list[Citation] = []
    for index, interaction in enumerate(interactions):
        if interaction.recommendation_id is None:
            continue
        issued = known.get(interaction.recommendation_id)
        if issued is not None and issued.learner_id not in (None, interaction.user_id):
            problems.append(
                ErrorDetail(
                    ["body", index, "recommendation_id"],
                    "foreign_recommendation",
                    "this list was made for another learner",
                )
            )
            continue
        citations.append(Citation(issued, interaction.course_id, interaction.type.value))
    return problems, citations


def count(citations: Sequence[Citation]) -> None:
    """Counted at acceptance: an interaction whose course later turns out unknown was still
    cited (its task reports the error), and a retried request counts again."""
    for citation in citations:
        issued = citation.list
        if issued is None:
            RECOMMENDATION_UNATTRIBUTED.labels("unknown_list").inc()
            continue
        reason = issued.reasons.get(citation.course_id)
        if reason is None:
            RECOMMENDATION_UNATTRIBUTED.labels("not_in_list").inc()
            continue
        RECOMMENDATION_OUTCOMES.labels(issued.surface, issued.strategy, reason, citation.type).inc()
