"""All SQL of search: keyword candidates (full text + title trigrams), the candidates' fields
for ranking, facets and sorting, and highlights.

A query is split into words. Each word matches by its stem in the query's text-search
configuration or as written ('simple'); words that configuration calls stop words are dropped
(they would match nearly every course). The last word also matches as a prefix, for a query
still being typed. The words are OR-ed: ranking, not matching, rewards the courses that have
them all.
"""

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.ext.asyncio import AsyncSession

from shared.catalog.models import Course
from shared.catalog.repository import filter_clauses
from shared.catalog.schemas import CourseFilters, Highlight

WORD = re.compile(r"\w+")
# ts_headline's markers: private-use characters, removed from the text first, so the escaped
# text can only get the tags we put there.
START, STOP = "\ue000", "\ue001"
MAX_WORDS = 32


def query_words(query: str) -> list[str]:
    return WORD.findall(query.lower())[:MAX_WORDS]


def _tsquery_sql(config: str) -> str:
    """SQL text of a tsquery over the words `:words` (and the prefix `:last`), stemmed with the
    configuration expression `config` and as written, OR-ed."""
    stemmed = f"plainto_tsquery({config}, w)"
    return (
        "(SELECT CAST(string_agg(part, ' | ') AS tsquery) FROM ("
        f"  SELECT '(' || CAST({stemmed} || plainto_tsquery('simple', w) AS text) || ')' AS part"
        "   FROM unnest(CAST(:words AS text[])) AS w"
        f"  WHERE numnode({stemmed}) > 0"
        "  UNION ALL"
        "  SELECT quote_literal(CAST(:last AS text)) || ':*'"
        f"  WHERE CAST(:last AS text) IS NOT NULL AND numnode(plainto_tsquery({config}, :last)) > 0"
        ") AS parts)"
    )


@dataclass(frozen=True)
class KeywordQuery:
    normalised: str
    tsquery: str | None  # PostgreSQL's text form; None when no word can match


@dataclass(frozen=True)
class KeywordHit:
    id: str
    score: float


@dataclass(frozen=True)
class Candidate:
    """What ranking, facets and sorting need of a course."""

    id: str
    search_title: str
    provider: str | None
    language: str | None
    level: str | None
    skills: list[str]
    duration_hours: float | None
    price: float | None
    rating: float | None
    created_at: datetime


def _last_word(query: str, words: Sequence[str]) -> str | None:
    """The word being typed: the last one, unless the query ends after it."""
    if not words or not query or not query[-1].isalnum():
        return None
    return words[-1]


class KeywordSearch:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def prepare(self, query: str, language: str) -> KeywordQuery:
        """The normalised query and its tsquery, stemmed for `language` (BCP 47)."""
        words = query_words(query)
        row = (
            await self.session.execute(
                text(
                    "SELECT coursewise_normalise(:q) AS normalised, "
                    f"CAST({_tsquery_sql('coursewise_regconfig(:language)')} AS text) AS tsquery"
                ),
                {
                    "q": query,
                    "language": language,
                    "words": words,
                    "last": _last_word(query, words),
                },
            )
        ).one()
        return KeywordQuery(row.normalised, row.tsquery or None)

    async def candidates(
        self, query: KeywordQuery, filters: CourseFilters, *, limit: int
    ) -> list[KeywordHit]:
        """The best keyword matches under the filters, best first: full-text rank (title A,
        skills B, provider C, description D) plus the title's trigram similarity to the query;
        an exact title first of all."""
        if not query.normalised:
            return []
        normalised: BindParameter[str] = bindparam("normalised", query.normalised)
        similarity = func.similarity(Course.search_title, normalised)
        matches = [
            Course.search_title == normalised,
            # pg_trgm's `%` (similarity >= 0.3, its default threshold) uses the trigram index.
            Course.search_title.op("%")(normalised),
        ]
        score: ColumnElement[Any] = similarity
        if query.tsquery is not None:
            tsquery = cast(bindparam("tsquery", query.tsquery), TSQUERY)
            matches.append(Course.search_vector.op("@@")(tsquery))
            score = score + func.ts_rank(Course.search_vector, tsquery, 1)
        statement = (
            select(Course.id, cast(score, Float).label("score"))
            .where(Course.deleted_at.is_(None), or_(*matches), *filter_clauses(filters))
            .order_by((Course.search_title == normalised).desc(), literal_column("score").desc())
            .order_by(Course.id)
            .limit(limit)
        )
        rows = (await self.session.execute(statement)).all()
        return [KeywordHit(row.id, float(row.score)) for row in rows]

    async def fields(self, ids: Sequence[str], filters: CourseFilters) -> dict[str, Candidate]:
        """The live courses among `ids` that pass the filters (PostgreSQL has the last word:
        the vector index may lag a write)."""
        if not ids:
            return {}
        statement = select(
            Course.id,
            Course.search_title,
            Course.provider,
            Course.language,
            Course.level,
            Course.skills,
            Course.duration_hours,
            Course.price,
            Course.rating,
            Course.created_at,
        ).where(Course.id.in_(list(ids)), Course.deleted_at.is_(None), *filter_clauses(filters))
        rows = (await self.session.execute(statement)).all()
        return {row.id: Candidate(**row._mapping) for row in rows}

    async def highlights(self, ids: Sequence[str], query: str) -> dict[str, Highlight]:
        """Title and description snippet with the query's words marked, each course's text
        read with its own language's configuration."""
        words = query_words(query)
        if not ids:
            return {}
        if not words:
            return {}
        options = f"StartSel={START}, StopSel={STOP}"
        rows = await self.session.execute(
            text(
                "SELECT id,"
                " ts_headline(cfg, clean_title, hq, :title_options) AS title,"
                " ts_headline(cfg, clean_description, hq, :snippet_options) AS snippet"
                " FROM courses,"
                " LATERAL (SELECT coursewise_regconfig(language) AS cfg,"
                "   translate(title, :markers, '') AS clean_title,"
                "   translate(description, :markers, '') AS clean_description) AS c,"
                f" LATERAL (SELECT coalesce({_tsquery_sql('cfg')}, CAST('' AS tsquery)) AS hq)"
                " AS h"
                " WHERE id = ANY(CAST(:ids AS text[]))"
            ),
            {
                "ids": list(ids),
                "words": words,
                "last": _last_word(query, words),
                "markers": START + STOP,
                "title_options": f"{options}, HighlightAll=true",
                "snippet_options": f"{options}, MinWords=15, MaxWords=35, MaxFragments=2, "
                'FragmentDelimiter=" … "',
            },
        )
        return {
            row.id: Highlight(title=_marked(row.title), snippet=_marked(row.snippet))
            for row in rows
        }


def _marked(headline: str) -> str:
    return html.escape(headline).replace(START, "<mark>").replace(STOP, "</mark>")
