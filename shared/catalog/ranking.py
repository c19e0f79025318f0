"""How hybrid search orders its candidates: fusion of the keyword and semantic lists, title
matches, sort keys and facets. Pure functions (no I/O), shared by the API and the bench.

Title matches come first, in tiers, whatever the fusion says: the query *is* a title (after
normalisation), or is one up to typos (same words, each within the edit distance a spelling
search conventionally allows for its length: 0 up to 2 letters, 1 up to 5, 2 beyond; an adjacent
transposition counts as one edit), or is the start of a title (at least two words). Within a
tier, and for every other course, the fused score decides; ties by id.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from shared.catalog.keyword import Candidate

RRF_K = 60
Fusion = Literal["rrf", "score"]
TitleMatch = Literal["exact", "typo", "prefix"]
TIERS: dict[TitleMatch | None, int] = {"exact": 3, "typo": 2, "prefix": 1, None: 0}


class SortField(StrEnum):
    relevance = "relevance"
    rating = "rating"
    newest = "newest"
    duration = "duration"
    price = "price"


FACETS = ("level", "language", "provider", "skills", "free", "duration")
# Duration facet buckets, in hours: (lower, upper], the first from 0 inclusive.
DURATION_BUCKETS = ((0, 2), (2, 5), (5, 10), (10, 20), (20, 50), (50, None))
MAX_SKILL_VALUES = 50


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    keyword_rank: int | None
    keyword_score: float | None
    semantic_rank: int | None
    semantic_score: float | None
    fused: float
    title_match: TitleMatch | None

    @property
    def score(self) -> float:
        return TIERS[self.title_match] + self.fused


def _minmax(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high <= low:
        return {key: 1.0 for key in scores}
    return {key: (value - low) / (high - low) for key, value in scores.items()}


def fuse(
    keyword: Sequence[tuple[str, float]],
    semantic: Sequence[tuple[str, float]],
    semantic_ratio: float,
    method: Fusion,
) -> dict[str, float]:
    """Fused score in 0..1 of every id in either list (each list best first).

    `rrf`: reciprocal rank fusion, weighted by the ratio and scaled so a course first in both
    lists scores 1. `score`: each side's scores min-max normalised over its list, then mixed.
    """
    fused: dict[str, float] = {}
    if method == "rrf":
        for weight, hits in ((1 - semantic_ratio, keyword), (semantic_ratio, semantic)):
            for rank, (course_id, _) in enumerate(hits, start=1):
                share = weight * (RRF_K + 1) / (RRF_K + rank)
                fused[course_id] = fused.get(course_id, 0.0) + share
        return fused
    for weight, hits in ((1 - semantic_ratio, keyword), (semantic_ratio, semantic)):
        for course_id, value in _minmax(dict(hits)).items():
            fused[course_id] = fused.get(course_id, 0.0) + weight * value
    return fused


def edit_distance(a: str, b: str, bound: int) -> int:
    """Optimal string alignment distance (adjacent transposition = 1 edit), or bound + 1 once
    it is certainly larger than `bound`."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = ca != cb
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > bound:
            return bound + 1
        previous2, previous = previous, current
    return previous[-1]


def allowed_edits(word: str) -> int:
    return 0 if len(word) <= 2 else 1 if len(word) <= 5 else 2


def title_match(query: str, title: str) -> TitleMatch | None:
    """How the normalised query matches a normalised title, if it does."""
    if not query or not title:
        return None
    if query == title:
        return "exact"
    words, title_words = query.split(), title.split()
    if len(words) == len(title_words) and all(
        edit_distance(w, t, allowed_edits(t)) <= allowed_edits(t)
        for w, t in zip(words, title_words, strict=True)
    ):
        return "typo"
    if len(words) >= 2 and title.startswith(query + " "):
        return "prefix"
    return None


def rank(
    candidates: dict[str, Candidate],
    keyword: Sequence[tuple[str, float]],
    semantic: Sequence[tuple[str, float]],
    *,
    query: str,
    semantic_ratio: float,
    method: Fusion,
) -> list[Ranked]:
    """Every candidate (the live courses passing the filters), unordered."""
    fused = fuse(keyword, semantic, semantic_ratio, method)
    keyword_at = {course_id: (i, s) for i, (course_id, s) in enumerate(keyword, start=1)}
    semantic_at = {course_id: (i, s) for i, (course_id, s) in enumerate(semantic, start=1)}
    ranked = []
    for course_id, candidate in candidates.items():
        kw_rank, kw_score = keyword_at.get(course_id, (None, None))
        sem_rank, sem_score = semantic_at.get(course_id, (None, None))
        ranked.append(
            Ranked(
                candidate,
                kw_rank,
                kw_score,
                sem_rank,
                sem_score,
                round(fused.get(course_id, 0.0), 6),
                title_match(query, candidate.search_title),
            )
        )
    return ranked


SortKey = tuple[bool | float | str, ...]


def sort_key(item: Ranked, sort: SortField) -> SortKey:
    """Ascending order of results; the id last, so every key is distinct. Rating and newest
    descend, duration and price ascend (no price is free), unknown values last."""
    c = item.candidate
    if sort is SortField.rating:
        return (c.rating is None, -(c.rating or 0.0), c.id)
    if sort is SortField.newest:
        return (-c.created_at.timestamp(), c.id)
    if sort is SortField.duration:
        return (c.duration_hours is None, c.duration_hours or 0.0, c.id)
    if sort is SortField.price:
        return (c.price or 0.0, c.id)
    return (-item.score, c.id)


def key_shape_matches(key: Sequence[object], sort: SortField) -> bool:
    """Whether a key from a cursor has the shape of this sort's keys."""
    shapes: dict[SortField, tuple[type | tuple[type, ...], ...]] = {
        SortField.relevance: ((int, float), str),
        SortField.rating: (bool, (int, float), str),
        SortField.newest: ((int, float), str),
        SortField.duration: (bool, (int, float), str),
        SortField.price: ((int, float), str),
    }
    shape = shapes[sort]
    return len(key) == len(shape) and all(
        isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        for value, kind in zip(key, shape, strict=True)
    )


def _duration_bucket(hours: float | None) -> str | None:
    if hours is None:
        return None
    for low, high in DURATION_BUCKETS:
        if high is None or hours <= high:
            return f"{low}-{high}" if high is not None else f"{low}+"
    return None  # pragma: no cover - the last bucket is open


def _values(candidate: Candidate, facet: str) -> Iterable[str | bool | None]:
    if facet == "skills":
        return candidate.skills
    if facet == "free":
        return [not candidate.price]
    if facet == "duration":
        return [_duration_bucket(candidate.duration_hours)]
    value: str | None = getattr(candidate, facet)
    return [value]


def facet_counts(
    items: Iterable[Candidate], facets: Sequence[str]
) -> dict[str, list[tuple[str | bool | None, int]]]:
    """Counts of each value over all the items, most frequent first (then by value, null last);
    skills keep their 50 most frequent values."""
    items = list(items)
    counts: dict[str, list[tuple[str | bool | None, int]]] = {}
    for facet in facets:
        tally: dict[str | bool | None, int] = {}
        for candidate in items:
            for value in _values(candidate, facet):
                tally[value] = tally.get(value, 0) + 1
        ordered = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0] is None, str(kv[0])))
        counts[facet] = ordered[:MAX_SKILL_VALUES] if facet == "skills" else ordered
    return counts
