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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    Integer,
    Text,
    any_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
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
# Keyword candidates whose whole document is ranked, per candidate returned.
POOL = 3
# A word at least this share of the courses has is matched only together with the other such
# words of the query (see KeywordSearch.candidates).
COMMON_SHARE = 0.05


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
    # Per word: whether COMMON_SHARE or more of the catalogue has it (see `candidates`).
    common: list[bool] = field(default_factory=list)

    @property
    def tsquery(self) -> str | None:
        """Any of the words; None when no word can match."""
        return " | ".join(self.words) or None


class WordFrequencies:
    """The share of courses whose document has each of its most common lexemes, as PostgreSQL's
    statistics have it (ANALYZE keeps about a thousand for a tsvector column), per database,
    re-read every `ttl_s`. A lexeme it does not list is rarer than all it lists."""

    def __init__(self, ttl_s: float = 300.0) -> None:
        self.ttl_s = ttl_s
        self._read: dict[str, tuple[float, dict[str, float]]] = {}

    async def get(self, session: AsyncSession) -> dict[str, float]:
        key = str(getattr(session.bind, "url", ""))  # one catalogue per database
        read_at, shares = self._read.get(key, (0.0, {}))
        if time.monotonic() - read_at < self.ttl_s:
            return shares
        row = (
            await session.execute(
                text(
                    "SELECT CAST(CAST(most_common_elems AS text) AS text[]) AS lexemes,"
                    " most_common_elem_freqs AS shares FROM pg_stats"
                    " WHERE schemaname = current_schema() AND tablename = 'courses'"
                    " AND attname = 'search_vector'"
                )
            )
        ).one_or_none()
        shares = {}
        if row is not None and row.lexemes:
            shares = dict(zip(row.lexemes, row.shares, strict=False))  # 3 summary values after
        self._read[key] = (time.monotonic(), shares)
        return shares


FREQUENCIES = WordFrequencies()
LEXEME = re.compile(r"'((?:[^']|'')*)'")


def word_share(word_query: str, shares: dict[str, float]) -> float:
    """The share of courses with a word, by the commonest of its forms in its tsquery."""
    forms = [m.replace("''", "'") for m in LEXEME.findall(word_query)]
    return max((shares.get(form, 0.0) for form in forms), default=0.0)


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
        parts = list(row.words or [])
        shares = await FREQUENCIES.get(self.session)
        common = [word_share(part, shares) >= COMMON_SHARE for part in parts]
        return KeywordQuery(row.normalised, parts, common)

    async def candidates(
        self, query: KeywordQuery, filters: CourseFilters, *, limit: int
    ) -> list[KeywordHit]:
        """The best keyword matches under the filters, best first, an exact title first of all.

        The score adds the share of the query's words the course has (anywhere: a course with
        all of them before one with some), the title's trigram similarity to the query where
        pg_trgm calls the titles similar (typos), and the full-text rank (title A, skills B,
        provider C, description D; divided by 1 + log(length), as long descriptions repeat
        words).

        Two stages, so the cost follows the words' index entries, not the documents: which
        courses have which word, in the whole document and in the head (title, skills,
        provider), comes from one GIN bitmap scan per word and field, which reads no document;
        the `POOL` x `limit` courses best by words, head words and title similarity then have
        their document read once, for the rank.

        Words that COMMON_SHARE or more of the catalogue has (as PostgreSQL's statistics say) are
        matched together, not one by one: a course is a candidate for them only when it has
        them all. On their own they select most of a large catalogue, and rank, not select:
        a course with some of them and none of the rarer words would score below every course
        with all of them."""
        if not query.normalised:
            return []
        normalised: BindParameter[str] = bindparam("normalised", query.normalised)
        live = [Course.deleted_at.is_(None), *sql_conditions(filters)]
        zero = literal(0)
        none = cast(literal(0.0), Float)
        branches = [
            # pg_trgm's `%` (similarity >= 0.3, its default threshold) uses the trigram index.
            # A higher threshold for long queries was a third faster at 50k courses but lost
            # misspelt words ("pyhton for data anlysis" is 0.32 like "Data Analysis with pandas").
            select(
                Course.id.label("id"),
                zero.label("words"),
                zero.label("head"),
                cast(func.similarity(Course.search_title, normalised), Float).label("similarity"),
                cast(Course.search_title == normalised, Integer).label("exact"),
            ).where(
                or_(Course.search_title == normalised, Course.search_title.op("%")(normalised)),
                *live,
            )
        ]
        common = [w for w, c in zip(query.words, query.common, strict=False) if c]
        groups = [[w] for w, c in zip(query.words, query.common, strict=False) if not c]
        groups += [common] if common else []
        for i, group in enumerate(groups):
            tsquery = cast(bindparam(f"w{i}", " & ".join(group)), TSQUERY)
            count = literal(len(group))
            branches.append(
                select(Course.id, count, zero, none, zero).where(
                    Course.search_vector.op("@@")(tsquery), *live
                )
            )
            branches.append(
                select(Course.id, zero, count, none, zero).where(
                    Course.search_head.op("@@")(tsquery), *live
                )
            )
        matched = union_all(*branches).subquery("matched")
        words = max(1, len(query.words))
        base = cast(func.sum(matched.c.words), Float) / words + func.max(matched.c.similarity)
        exact = func.max(matched.c.exact)
        head = cast(func.sum(matched.c.head), Float) / words
        pool = (
            select(matched.c.id, base.label("base"), exact.label("exact"))
            .group_by(matched.c.id)
            .order_by(exact.desc(), (base + head).desc(), matched.c.id)
            .limit(limit * POOL)
            .subquery("pool")
        )
        score: ColumnElement[Any] = pool.c.base
        if query.tsquery is not None:
            tsquery = cast(bindparam("tsquery", query.tsquery), TSQUERY)
            score = score + func.ts_rank(Course.search_vector, tsquery, 1)
        statement = (
            select(Course.id, cast(score, Float).label("score"))
            .join(pool, pool.c.id == Course.id)
            .order_by(pool.c.exact.desc(), literal_column("score").desc(), Course.id)
            .limit(limit)
        )
        # The planner's estimates for a word are poor, and a sequential scan reads every
        # document: index scans only; and room to count a common word's matches in memory
        # (a catalogue of 50k spilled to disk at the default 4 MB). For this read's transaction.
        await self.session.execute(
            text(
                "SELECT set_config('enable_seqscan', 'off', true),"
                " set_config('work_mem', '16MB', true)"
            )
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
