"""How much an interaction says about a learner: one rule for the content vector, ALS training
and the read-time fold-in, so the models see a learner the same way."""

import math
from collections.abc import Iterable
from datetime import datetime

from shared.settings import Settings

# Enrolled or completed courses are never recommended again.
TAKEN_TYPES = frozenset({"enroll", "complete"})


def interaction_weight(
    settings: Settings, type: str, value: int | None, occurred_at: datetime, now: datetime
) -> float:
    if type == "rate":
        base = max(0.0, float(value or 0) - 2.0)
    else:
        base = {
            "view": settings.weight_view,
            "bookmark": settings.weight_bookmark,
            "enroll": settings.weight_enroll,
            "complete": settings.weight_complete,
        }.get(type, 0.0)
    age_days = max(0.0, (now - occurred_at).total_seconds() / 86400)
    return base * math.pow(0.5, age_days / settings.recency_half_life_days)


def aggregate(
    settings: Settings,
    rows: Iterable[tuple[str, str, int | None, datetime]],
    now: datetime,
) -> dict[str, float]:
    """(course, type, value, occurred_at) rows -> weight per course."""
    weights: dict[str, float] = {}
    for course_id, type, value, occurred_at in rows:
        weight = interaction_weight(settings, type, value, occurred_at, now)
        weights[course_id] = weights.get(course_id, 0.0) + weight
    return weights
