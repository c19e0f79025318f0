"""Popular courses and model administration."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.auth import AdminDep, ReaderDep
from api.deps import (
    AutocommitSessionDep,
    DispatcherDep,
    IdempotencyKeyDep,
    RecommenderDep,
)
from api.errors import ERROR_RESPONSES
from api.routes.courses import ACCEPTED
from api.write_path import idempotency_request
from shared.catalog.filters import CourseFilters
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import course_out
from shared.ledger.schemas import TaskAccepted, TaskType
from shared.recommendations.schemas import (
    WINDOW_PATTERN,
    PopularCourse,
    PopularPage,
    parse_window,
)
from shared.recommendations.training import RetrainItem

router = APIRouter(tags=["recommendations"])


@router.get(
    "/v1/courses/popular",
    summary="Trending courses: most distinct learners within a window",
    response_model=PopularPage,
    responses=ERROR_RESPONSES,
)
async def popular_courses(
    _: ReaderDep,
    session: AutocommitSessionDep,
    recommender: RecommenderDep,
    filters: Annotated[CourseFilters, Query()],
    window: Annotated[
        str, Query(pattern=WINDOW_PATTERN, description="e.g. `24h`, `7d`, `30d`")
    ] = "7d",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> PopularPage:
    ranked = (await recommender.popular(session, filters, parse_window(window)))[:limit]
    rows = await CourseRepository(session).get_many([course_id for course_id, _ in ranked])
    items = [
        PopularCourse(**course_out(rows[course_id]).model_dump(), learners=learners)
        for course_id, learners in ranked
        if course_id in rows and rows[course_id].deleted_at is None
    ]
    return PopularPage(items=items, window=window)


@router.post(
    "/v1/admin/retrain",
    summary="Train the collaborative model now (on the training queue)",
    **ACCEPTED,
)
async def retrain(
    caller: AdminDep, request: Request, dispatcher: DispatcherDep, key: IdempotencyKeyDep
) -> TaskAccepted:
    items = [RetrainItem().model_dump(mode="json")]
    return await dispatcher.accept(
        TaskType.model_retrain,
        items,
        idempotency_request(request, caller, key, items),
        caller.owner,
    )
