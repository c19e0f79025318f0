"""The public contract of title suggestions (`GET /v1/search/suggest`)."""

from pydantic import BaseModel, Field

from shared.catalog.schemas import _SPACE

# What a search box may send: printable text (no control characters, which also keeps U+0000
# out of SQL) with at least one character that is not white space.
_CONTROL = r"\u0000-\u001f\u007f"
SUGGEST_QUERY_PATTERN = rf"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
SUGGEST_QUERY_MAX_LENGTH = 200
SUGGEST_MAX_LIMIT = 20


class Suggestion(BaseModel):
    id: str
    title: str
    highlight: str = Field(
        description="the title as HTML-escaped text, with the parts that match what was typed "
        "wrapped in <mark></mark>"
    )


class SuggestionPage(BaseModel):
    items: list[Suggestion] = Field(description="best completion first")
