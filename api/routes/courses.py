"""Course writes (accepted with 202, applied by workers) and reads (answered inline)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from api.auth import ReaderDep, WriterDep
from api.bulk import NDJSON_TYPES, parse_bulk
from api.consistency import ConsistencyDep
from api.deps import (
    AutocommitSessionDep,
    DispatcherDep,
    IdempotencyKeyDep,
    ReadSessionDep,
    RecommenderDep,
    SettingsDep,
)
from api.errors import ERROR_RESPONSES, NOT_FOUND, ErrorResponse
from api.write_path import idempotency_request
from shared.catalog.cache import CachedCourses
from shared.catalog.filters import CourseFilters
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import (
    COURSE_ID_PATTERN,
    CourseIn,
    CourseOut,
    CoursePage,
    CoursePatch,
    course_out,
)
from shared.catalog.writes import CoursePatchItem, CourseRef
from shared.ledger.schemas import TaskAccepted, TaskType
from shared.pagination import decode_cursor, encode_cursor
from shared.recommendations.schemas import SimilarPage
from shared.recommendations.similar import similar_page

router = APIRouter(prefix="/v1/courses", tags=["courses"])

CourseIdPath = Annotated[str, Path(pattern=COURSE_ID_PATTERN, description="the course id")]
FiltersQuery = Annotated[CourseFilters, Query()]
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"model": ErrorResponse, "description": "Idempotency-Key reused with another request"},
}
ACCEPTED: dict[str, Any] = {
    "status_code": status.HTTP_202_ACCEPTED,
    "response_model": TaskAccepted,
    "responses": WRITE_ERRORS,
}


@router.post("", summary="Create or replace a course", **ACCEPTED)
async def upsert_course(
    caller: WriterDep,
    course: CourseIn,
    request: Request,
    dispatcher: DispatcherDep,
    key: IdempotencyKeyDep,
) -> TaskAccepted:
    items = [course.to_record()]
    return await dispatcher.accept(
        TaskType.course_upsert,
        items,
        idempotency_request(request, caller, key, items),
        caller.owner,
    )


@router.post(
    "/bulk",
    summary="Create or replace many courses",
    description=(
        "A JSON array of up to 1,000 courses (`application/json`), or up to 10,000 courses, one "
        "JSON object per line (`application/x-ndjson`), at most 64 MiB (limits are settings). "
        "The whole request is validated first: any problem answers 422 listing every problem "
        'with its location (`["body", index, field]`) and nothing is queued.'
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1000,
                        "items": {"$ref": "#/components/schemas/CourseIn"},
                    }
                },
                **{t: {"schema": {"type": "string"}} for t in NDJSON_TYPES[:1]},
            },
        }
    },
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskAccepted,
    responses={
        **WRITE_ERRORS,
        413: {"model": ErrorResponse, "description": "Too many courses or too large a body"},
        415: {"model": ErrorResponse, "description": "Neither JSON nor NDJSON"},
    },
)
async def bulk_upsert_courses(
    caller: WriterDep,
    request: Request,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    key: IdempotencyKeyDep,
) -> TaskAccepted:
    items = [course.to_record() for course in await parse_bulk(request, settings)]
    return await dispatcher.accept(
        TaskType.course_bulk_upsert,
        items,
        idempotency_request(request, caller, key, items),
        caller.owner,
    )


@router.patch("/{course_id}", summary="Change some fields of a course", **ACCEPTED)
async def patch_course(
    caller: WriterDep,
    course_id: CourseIdPath,
    patch: Annotated[CoursePatch, Body()],
    request: Request,
    dispatcher: DispatcherDep,
    key: IdempotencyKeyDep,
) -> TaskAccepted:
    items = [CoursePatchItem(id=course_id, changes=patch.changes()).model_dump(mode="json")]
    return await dispatcher.accept(
        TaskType.course_patch, items, idempotency_request(request, caller, key, items), caller.owner
    )


@router.delete("/{course_id}", summary="Delete a course", **ACCEPTED)
async def delete_course(
    caller: WriterDep,
    course_id: CourseIdPath,
    request: Request,
    dispatcher: DispatcherDep,
    key: IdempotencyKeyDep,
) -> TaskAccepted:
    items = [CourseRef(id=course_id).model_dump(mode="json")]
    return await dispatcher.accept(
        TaskType.course_delete,
        items,
        idempotency_request(request, caller, key, items),
        caller.owner,
    )


@router.get("", summary="List courses", response_model=CoursePage, responses=ERROR_RESPONSES)
async def list_courses(
    _: ReaderDep,
    __: ConsistencyDep,
    session: ReadSessionDep,
    filters: FiltersQuery,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> CoursePage:
    after = decode_cursor(cursor, key="after", kind=str)
    rows = await CourseRepository(session).list_live(filters, after_id=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return CoursePage(
        items=[course_out(row) for row in rows],
        next_cursor=encode_cursor({"after": rows[-1].id}) if more else None,
    )


@router.get(
    "/{course_id}",
    summary="Get one course",
    response_model=CourseOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def get_course(
    _: ReaderDep, waited: ConsistencyDep, course_id: CourseIdPath, request: Request
) -> Response:
    # The hottest read: the cached JSON as is, and one dependency fewer than a `*Dep` alias
    # (FastAPI's dependency solving is the largest cost left on this path, measured).
    courses: CachedCourses = request.app.state.cached_courses
    body = await courses.get_json(course_id, min_version=waited)
    return Response(body, media_type="application/json")


@router.get(
    "/{course_id}/similar",
    summary="Courses similar to this one",
    description=(
        "Close in content (the embeddings' cosine), taken by the same learners, sharing "
        "skills: blended, each item with its reason. The list carries a `recommendation_id` "
        "interactions may cite."
    ),
    response_model=SimilarPage,
    responses={
        **ERROR_RESPONSES,
        **NOT_FOUND,
        409: {"model": ErrorResponse, "description": "The course is not indexed yet"},
    },
)
async def similar_courses(
    _: ReaderDep,
    __: ConsistencyDep,
    course_id: CourseIdPath,
    session: AutocommitSessionDep,
    recommender: RecommenderDep,
    filters: FiltersQuery,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SimilarPage:
    return await similar_page(recommender.similar, session, course_id, filters, limit=limit)
