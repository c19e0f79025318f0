from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import ReaderDep
from api.consistency import ConsistencyDep
from api.deps import ReadSessionDep, SearchDep, SettingsDep
from api.errors import ERROR_RESPONSES
from shared.catalog.filters import PRINTABLE, CourseFilters
from shared.catalog.ranking import FACETS, SortField, SortKey, key_shape_matches
from shared.catalog.schemas import SearchPage
from shared.catalog.search import SearchOptions
from shared.errors import ErrorDetail, InvalidRequest
from shared.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["search"])


def _facets(value: str | None) -> list[str]:
    if value is None:
        return []
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in FACETS]
    if unknown:
        raise InvalidRequest(
            f"Unknown facet(s): {', '.join(map(repr, unknown))}.",
            [
                ErrorDetail(
                    ["query", "facets"], "unknown_facet", f"facets are one of {', '.join(FACETS)}"
                )
            ],
        )
    return list(dict.fromkeys(names))


def _after(cursor: str | None, sort: SortField) -> SortKey | None:
    position = decode_cursor(cursor, key="after", kind=list)
    if position is None:
        return None
    if not position or position[0] != sort.value or not key_shape_matches(position[1:], sort):
        raise InvalidRequest(
            "The cursor belongs to another sort order.",
            [ErrorDetail(["query", "cursor"], "invalid_cursor", "use next_cursor as returned")],
        )
    return tuple(position[1:])


@router.get(
    "/search",
    summary="Hybrid keyword + semantic search over courses",
    response_model=SearchPage,
    responses=ERROR_RESPONSES,
)
async def search_courses(
    _: ReaderDep,
    __: ConsistencyDep,
    session: ReadSessionDep,
    search: SearchDep,
    settings: SettingsDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=500,
            pattern=PRINTABLE,
            description="what to look for: words of a title, a typo'd title, or a description "
            "in your own words",
        ),
    ],
    filters: Annotated[CourseFilters, Query()],
    semantic_ratio: Annotated[
        float | None,
        Query(
            ge=0,
            le=1,
            allow_inf_nan=False,
            description="share of the semantic side: 0 keyword only, 1 semantic only (default 0.5)",
        ),
    ] = None,
    sort: Annotated[SortField, Query(description="ties are broken by id")] = SortField.relevance,
    facets: Annotated[
        str | None,
        Query(
            max_length=200,
            description=f"comma-separated facets to count over all results: {', '.join(FACETS)}",
        ),
    ] = None,
    explain: Annotated[
        bool, Query(description="each hit carries its keyword, semantic and fused scores")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> SearchPage:
    options = SearchOptions(
        semantic_ratio=settings.search_semantic_ratio if semantic_ratio is None else semantic_ratio,
        sort=sort,
        limit=limit,
        after=_after(cursor, sort),
        facets=_facets(facets),
        explain=explain,
    )
    result = await search.hybrid(session, q, filters, options)
    next_cursor = (
        encode_cursor({"after": [sort.value, *result.next_key]})
        if result.next_key is not None
        else None
    )
    return SearchPage(
        items=result.items,
        next_cursor=next_cursor,
        facets=result.facets,
        degraded=result.degraded,
    )
