"""Learners and their interactions: writes accepted with 202 (applied by workers), reads inline."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request

from api.auth import ReaderDep, WriterDep
from api.deps import (
    AutocommitSessionDep,
    DispatcherDep,
    IdempotencyKeyDep,
    RecommenderDep,
    SessionDep,
    SettingsDep,
)
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.routes.courses import ACCEPTED
from api.write_path import idempotency_request
from shared.catalog.filters import CourseFilters
from shared.errors import ErrorDetail, InvalidRequest, LearnerNotFound
from shared.learners.repository import LearnerRepository
from shared.learners.schemas import (
    LEARNER_ID_PATTERN,
    InteractionCounts,
    InteractionIn,
    LearnerIn,
    LearnerOut,
)
from shared.learners.writes import LearnerRef
from shared.ledger.schemas import TaskAccepted, TaskType
from shared.recommendations import tracking
from shared.recommendations.schemas import RecommendationPage

router = APIRouter(tags=["learners"])

LearnerIdPath = Annotated[str, Path(pattern=LEARNER_ID_PATTERN, description="the learner id")]


@router.put("/v1/users/{user_id}", summary="Create or replace a learner profile", **ACCEPTED)
async def put_learner(
    caller: WriterDep,
    user_id: LearnerIdPath,
    profile: Annotated[LearnerIn, Body()],
    request: Request,
    dispatcher: DispatcherDep,
    key: IdempotencyKeyDep,
) -> TaskAccepted:
    items = [profile.to_record(user_id)]
    return await dispatcher.accept(
        TaskType.learner_upsert,
        items,
        idempotency_request(request, caller, key, items),
        caller.owner,
    )


@router.delete(
    "/v1/users/{user_id}",
    summary="Delete a learner: their profile and interactions, everywhere",
    **ACCEPTED,
)
async def delete_learner(
    caller: WriterDep,
    user_id: LearnerIdPath,
    request: Request,
    dispatcher: DispatcherDep,
    key: IdempotencyKeyDep,
) -> TaskAccepted:
    items = [LearnerRef(id=user_id).model_dump(mode="json")]
    return await dispatcher.accept(
        TaskType.learner_delete,
        items,
        idempotency_request(request, caller, key, items),
        caller.owner,
    )


@router.post(
    "/v1/interactions",
    summary="Record a batch of interactions",
    description=(
        "A JSON array of up to 1,000 interactions. The whole batch is validated first: any "
        'problem answers 422 listing every problem with its location (`["body", index, field]`) '
        "and nothing is queued. An unknown learner is created; an interaction with an unknown "
        "course is reported as a per-item error of the task. The same `event_id` for a learner "
        "is stored once. An interaction may cite the `recommendation_id` of the list it came "
        "from: an unknown id is accepted but not attributed; another learner's list is refused "
        "(422)."
    ),
    **ACCEPTED,
)
async def post_interactions(
    caller: WriterDep,
    interactions: Annotated[list[InteractionIn], Body(min_length=1)],
    request: Request,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    key: IdempotencyKeyDep,
    session: SessionDep,
) -> TaskAccepted:
    if len(interactions) > settings.interactions_max_items:
        raise InvalidRequest(
            f"At most {settings.interactions_max_items} interactions per request.",
            [ErrorDetail(["body"], "too_long", f"{len(interactions)} items sent")],
        )
    problems, citations = await tracking.check_citations(session, interactions)
    if problems:
        raise InvalidRequest("An interaction cites another learner's recommendations.", problems)
    accepted_at = datetime.now(UTC)
    items = [interaction.to_record(accepted_at) for interaction in interactions]
    # The fingerprint is of what the client sent, not of the records: an `occurred_at` left out
    # defaults to the time of acceptance, which differs for a retry (409 for the same request).
    sent = [interaction.model_dump(mode="json") for interaction in interactions]
    accepted = await dispatcher.accept(
        TaskType.interaction_batch,
        items,
        idempotency_request(request, caller, key, sent),
        caller.owner,
    )
    tracking.count(citations)
    return accepted


@router.get(
    "/v1/users/{user_id}",
    summary="A learner: profile and interaction counts",
    response_model=LearnerOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def get_learner(_: ReaderDep, user_id: LearnerIdPath, session: SessionDep) -> LearnerOut:
    repo = LearnerRepository(session)
    learner = await repo.get(user_id)
    if learner is None:
        raise LearnerNotFound(user_id)
    counts, latest = await repo.counts(user_id)
    return LearnerOut(
        id=learner.id,
        interests=learner.interests,
        level=learner.level,
        language=learner.language,
        interactions=InteractionCounts(**counts),
        last_interaction_at=latest,
        created_at=learner.created_at,
        updated_at=learner.updated_at,
    )


@router.get(
    "/v1/users/{user_id}/recommendations",
    summary="What this learner should take next",
    description=(
        "Never includes a course the learner enrolled in or completed. A learner with history "
        "gets a hybrid of content similarity, collaborative filtering (ALS) and popularity; one "
        "with only a profile gets courses matching their interests; an unknown one gets popular "
        "courses. Every item says why it is there. The list carries a `recommendation_id` "
        "its learner's interactions may cite."
    ),
    response_model=RecommendationPage,
    responses=ERROR_RESPONSES,
)
async def recommend(
    _: ReaderDep,
    user_id: LearnerIdPath,
    session: AutocommitSessionDep,
    recommender: RecommenderDep,
    filters: Annotated[CourseFilters, Query()],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> RecommendationPage:
    page = await recommender.recommend(session, user_id, filters, limit=limit)
    page.recommendation_id = await tracking.issue(
        session,
        surface=tracking.RECOMMENDATIONS,
        learner_id=user_id,
        strategy=page.strategy.value,
        model_version=page.model_version,
        reasons=[(item.id, item.reason_code.value) for item in page.items],
    )
    return page
