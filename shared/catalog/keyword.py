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
    Text,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY
from sqlalchemy.ext.asyncio import AsyncSession

from shared.catalog.filters import CourseFilters, sql_conditions
from shared.catalog.models import Course
from shared.catalog.schemas import Highlight

WORD = re.compile(r"\w+")
# ts_headline's markers: private-use characters, removed from the text first, so the escaped
# text can only get the tags we put there.
START, STOP = "\ue000", "\ue001"
MAX_WORDS = 32


def query_words(query: str) -> list[str]:
    return WORD.findall(query.lower())[:MAX_WORDS]


def _word_queries_sql(config: str) -> str:
    """SQL of an array with the tsquery text of each word in `:words` that the configuration
    expression `config` does not call a stop word: its stem in that configuration or the word as
    written, and the last word also as a prefix when `:typing`."""
    stemmed = f"plainto_tsquery({config}, w)"
    return (
        "(SELECT array_agg(part ORDER BY n) FROM ("
        f"  SELECT n, '(' || CAST({stemmed} || plainto_tsquery('simple', w) AS text)"
        "     || CASE WHEN CAST(:typing AS boolean) AND n = cardinality(CAST(:words AS text[]))"
        "        THEN ' | ' || quote_literal(w) || ':*' ELSE '' END || ')' AS part"
        "   FROM unnest(CAST(:words AS text[])) WITH ORDINALITY AS t(w, n)"
        f"  WHERE numnode({stemmed}) > 0"
        ") AS parts)"
    )


@dataclass(frozen=True)
class KeywordQuery:
    normalised: str
    words: list[str]  # each word's tsquery, in PostgreSQL's text form

    @property
    def tsquery(self) -> str | None:
        """Any of the words; None when no word can match."""
        return " | ".join(self.words) or None


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


def _typing(query: str) -> bool:
    """Whether the last word may be unfinished: the query does not end after it."""
    return bool(query) and query[-1].isalnum()


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
                    f"{_word_queries_sql('coursewise_regconfig(:language)')} AS words"
                ),
                {"q": query, "language": language, "words": words, "typing": _typing(query)},
            )
        ).one()
        return KeywordQuery(row.normalised, list(row.words or []))

    async def candidates(
        self, query: KeywordQuery, filters: CourseFilters, *, limit: int
    ) -> list[KeywordHit]:
        """The best keyword matches under the filters, best first, an exact title first of all.

        The score adds the share of the query's words the course has (anywhere: a course with
        all of them before one with some), the title's trigram similarity to the query (typos),
        and the full-text rank (title A, skills B, provider C, description D; divided by
        1 + log(length), as long descriptions repeat words)."""
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
            has = [
                case(
                    (Course.search_vector.op("@@")(cast(bindparam(f"w{i}", word), TSQUERY)), 1.0),
                    else_=0.0,
                )
                for i, word in enumerate(query.words)
            ]
            coverage = sum(has[1:], has[0]) / len(has)
            score = score + coverage + func.ts_rank(Course.search_vector, tsquery, 1)
        statement = (
            select(Course.id, cast(score, Float).label("score"))
            .where(Course.deleted_at.is_(None), or_(*matches), *sql_conditions(filters))
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
        ).where(
            # One array parameter: a statement of the same shape whatever the number of ids.
            Course.id == any_(cast(bindparam("ids", list(ids)), ARRAY(Text))),
            Course.deleted_at.is_(None),
            *sql_conditions(filters),
        )
        rows = (await self.session.execute(statement)).all()
        return {row.id: Candidate(**row._mapping) for row in rows}

    async def highlights(self, ids: Sequence[str], query: str) -> dict[str, Highlight]:
        """Title and description snippet with the query's words marked, each course's text
        read with its own language's configuration."""
        words = query_words(query)
        if not ids or not words:
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
                " LATERAL (SELECT CAST(coalesce(array_to_string("
                f"{_word_queries_sql('cfg')}, ' | '), '') AS tsquery) AS hq)"
                " AS h"
                " WHERE id = ANY(CAST(:ids AS text[]))"
            ),
            {
                "ids": list(ids),
                "words": words,
                "typing": _typing(query),
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
