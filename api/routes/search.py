from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import ReaderDep
from api.deps import ReadSessionDep, SearchDep
from api.errors import ERROR_RESPONSES
from shared.catalog.filters import CourseFilters
from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import ScoredCoursePage
from shared.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["search"])

MAX_OFFSET = 1000


@router.get(
    "/search",
    summary="Semantic search over courses",
    response_model=ScoredCoursePage,
    responses=ERROR_RESPONSES,
)
async def search_courses(
    _: ReaderDep,
    session: ReadSessionDep,
    search: SearchDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="what to look for")],
    filters: Annotated[CourseFilters, Query()],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> ScoredCoursePage:
    offset = min(max(decode_cursor(cursor, key="offset", kind=int) or 0, 0), MAX_OFFSET)
    items, more = await search.search(
        CourseRepository(session), q, filters, limit=limit, offset=offset
    )
    next_offset = offset + limit
    has_next = more and next_offset <= MAX_OFFSET
    return ScoredCoursePage(
        items=items, next_cursor=encode_cursor({"offset": next_offset}) if has_next else None
    )
