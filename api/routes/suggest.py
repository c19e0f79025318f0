"""Title completions for a search box, from PostgreSQL alone: no query embedding, so each
keystroke costs one indexed query (shared/catalog/suggest.py)."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import ReaderDep
from api.deps import ReadSessionDep
from api.errors import ERROR_RESPONSES
from shared.catalog.suggest import TitleSuggestions
from shared.catalog.suggest_schemas import (
    SUGGEST_MAX_LIMIT,
    SUGGEST_QUERY_MAX_LENGTH,
    SUGGEST_QUERY_PATTERN,
    Suggestion,
    SuggestionPage,
)

router = APIRouter(prefix="/v1", tags=["search"])


@router.get(
    "/search/suggest",
    summary="Complete a course title as it is typed (typo-tolerant)",
    response_model=SuggestionPage,
    responses=ERROR_RESPONSES,
)
async def suggest_titles(
    _: ReaderDep,
    session: ReadSessionDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=SUGGEST_QUERY_MAX_LENGTH,
            pattern=SUGGEST_QUERY_PATTERN,
            description="what the search box holds so far; the last word may be unfinished",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=SUGGEST_MAX_LIMIT)] = 10,
) -> SuggestionPage:
    matches = await TitleSuggestions(session).suggest(q, limit=limit)
    return SuggestionPage(
        items=[Suggestion(id=m.id, title=m.title, highlight=m.highlight) for m in matches]
    )
