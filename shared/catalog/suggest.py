"""Title suggestions for a search box: answered by PostgreSQL alone (no model, no Milvus).

Both sides are compared normalised (`normalise` here; `courses.search_title`, computed by
migration 0006's `coursewise_normalise`, in the table): lower case, every run of
non-alphanumerics one space. A title ranks by how it matches what was typed:
1. the whole title starts with it ("machine lea" -> "Machine Learning: Regression");
2. a word of the title starts with it ("lea" -> "Deep Learning");
3. near misses, for typos ("mahcine lerning"): titles with a stretch of words whose trigrams
   are like the text's (pg_trgm word similarity); those whose first words look most like the
   text first (a mistyped prefix), then by strict word similarity anywhere in the title.
Within the first two ranks, titles where the last typed word is a whole word come first (the
word was finished: "art" puts "Art and Science of Machine Learning" before the shorter "Arts and
Heritage Management").
Then, in every rank, shorter titles first (the completion closest to what was typed), then the
better rated, then by id so the order is total and stable.

Ordering near misses by their first words is what makes a mistyped two-word prefix find its
course: on the Coursera catalogue (600 titles, one swapped pair of letters in the first two
words) it was in the top 10 for 91.8%, against 85.8% ranking by word similarity alone; 91.5% is
the ceiling (when more than ten titles share the first two words, ten is all one can show).
"""

import difflib
import html
import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# pg_trgm word_similarity from which a title counts as a near miss. One swapped pair of letters
# in a single six-letter word ("pyhton") scores 0.43; 0.5 missed such words (same sample as
# above: 86.5% in the top 10 against 91.8% at 0.4).
SIMILARITY_THRESHOLD = 0.4
# Trigrams of fewer characters match nearly everything: short input is completed, not corrected.
FUZZY_MIN_CHARS = 3
# A title word counts as the match of a typed word (for highlighting) from this likeness on.
HIGHLIGHT_MIN_RATIO = 0.6

_NON_ALNUM = re.compile(r"[\W_]+")
_WORD = re.compile(r"[^\W_]+")


def normalise(value: str) -> str:
    """What `coursewise_normalise` (migration 0006, `courses.search_title`) computes, in Python."""
    return _NON_ALNUM.sub(" ", value.lower()).strip()


_LIKE_TYPED = "(search_title LIKE :prefix OR search_title LIKE :word_start)"
# Ranks 1 and 2: cheap (LIKE, answered by the indexes).
_STARTING_WITH = text(f"""
    SELECT id, title FROM courses
    WHERE {_LIKE_TYPED} AND deleted_at IS NULL
    ORDER BY CASE WHEN search_title LIKE :prefix THEN 0 ELSE 1 END,
             CASE WHEN (search_title || ' ') LIKE :whole_prefix
                    OR (' ' || search_title || ' ') LIKE :whole_word THEN 0 ELSE 1 END,
             length(title), rating DESC NULLS LAST, id
    LIMIT :limit
""")
# Rank 3, only asked for when the first two leave room: each candidate costs a few trigram
# comparisons (50-100 µs a row; a common prefix has hundreds of near misses).
_NEAR_MISSES = text(f"""
    SELECT id, title FROM courses
    WHERE :text <% search_title AND NOT {_LIKE_TYPED} AND deleted_at IS NULL
    ORDER BY similarity(:text, array_to_string(
                 (string_to_array(search_title, ' '))[1:CAST(:words AS integer)], ' '
             )) DESC,
             strict_word_similarity(:text, search_title) DESC,
             length(title), rating DESC NULLS LAST, id
    LIMIT :limit
""")
# For this transaction only: the near-miss threshold, and no sequential scans. The planner costs
# trigram matching like a cheap operator, so it scans the whole table instead of the trigram
# index for most queries (measured: 35-50 ms against 1-3 ms on 3.4k courses).
_SETTINGS = text(
    "SELECT set_config('pg_trgm.word_similarity_threshold', :threshold, true), "
    "set_config('enable_seqscan', 'off', true)"
)


@dataclass(frozen=True)
class TitleMatch:
    id: str
    title: str
    highlight: str


class TitleSuggestions:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def suggest(self, typed: str, *, limit: int) -> list[TitleMatch]:
        query = normalise(typed)
        if not query:
            return []
        # Normalised text holds only letters, digits and single spaces: no LIKE wildcards.
        params = {
            "text": query,
            "prefix": query + "%",
            "word_start": "% " + query + "%",
            "whole_prefix": query + " %",
            "whole_word": "% " + query + " %",
            "words": len(query.split()),
            "limit": limit,
        }
        await self.session.execute(_SETTINGS, {"threshold": str(SIMILARITY_THRESHOLD)})
        rows = list((await self.session.execute(_STARTING_WITH, params)).all())
        if len(rows) < limit and len(query) >= FUZZY_MIN_CHARS:
            params["limit"] = limit - len(rows)
            rows += (await self.session.execute(_NEAR_MISSES, params)).all()
        return [TitleMatch(row.id, row.title, highlight(row.title, query)) for row in rows]


def _likeness(typed: str, word: str, partial: bool) -> float:
    """How well a title word matches a typed word; the last typed word may be unfinished."""
    if partial:
        word = word[: len(typed)]
    if word == typed:
        return 1.0
    return difflib.SequenceMatcher(None, typed, word).ratio()


def highlight(title: str, query: str) -> str:
    """The title, HTML-escaped, with the words matching the (normalised) query marked: the run
    of consecutive title words that matches the typed words best, and of the last typed word
    only as many letters as were typed."""
    typed = query.split()
    spans = [(m.start(), m.end()) for m in _WORD.finditer(title)]
    words = [title[start:end].lower() for start, end in spans]
    best: list[tuple[int, int]] = []
    best_score = 0.0
    for first in range(max(0, len(words) - len(typed)) + 1):
        marks: list[tuple[int, int]] = []
        score = 0.0
        for offset, word in enumerate(typed):
            index = first + offset
            if index >= len(words):
                break
            partial = offset == len(typed) - 1
            likeness = _likeness(word, words[index], partial)
            if likeness >= HIGHLIGHT_MIN_RATIO:
                start, end = spans[index]
                marks.append((start, min(end, start + len(word)) if partial else end))
                score += likeness
        if score > best_score:
            best, best_score = marks, score
    out: list[str] = []
    position = 0
    for start, end in best:
        out.append(html.escape(title[position:start], quote=False))
        out.append("<mark>" + html.escape(title[start:end], quote=False) + "</mark>")
        position = end
    out.append(html.escape(title[position:], quote=False))
    return "".join(out)
