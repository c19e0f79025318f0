"""Turning external catalogue files into the course contract (used by the demo loader, tests,
benchmarks and bulk ingestion)."""

import contextlib
import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_LEVELS = {
    "beginner": "beginner",
    "intermediate": "intermediate",
    "conversant": "intermediate",
    "advanced": "advanced",
}
# U+FFFD written as UTF-8 then read as Latin-1: the scrape's broken apostrophes and dashes.
_MOJIBAKE = "ï¿½"
_MOJIBAKE_APOSTROPHE = re.compile(r"(?<=[A-Za-z])ï¿½(?=[A-Za-z])")


def _repair(text: str) -> str:
    text = _MOJIBAKE_APOSTROPHE.sub("'", text).replace(_MOJIBAKE, " ")
    return " ".join(text.split())


def _skills(raw: str) -> list[str]:
    phrases = [p.strip().lower() for p in re.split(r"\s{2,}", raw) if p.strip()]
    return [p[:100] for p in dict.fromkeys(phrases)][:50]


def coursera_course(row: dict[str, str]) -> dict[str, Any]:
    """One row of the Coursera 2021 scrape as a course; its /learn/<slug> is the natural id."""
    url = row["Course _URL"].strip()
    rating = row["Course_Rating"].strip()
    course: dict[str, Any] = {
        "id": "coursera:" + url.rstrip("/").rsplit("/", 1)[-1],
        "title": _repair(row["Course_Name"])[:300],
        "description": _repair(row["Course_Description"])[:20_000] or _repair(row["Course_Name"]),
        "provider": _repair(row["University"])[:200] or None,
        "url": url or None,
        "language": "en",
        "skills": _skills(row["Skills"]),
    }
    level = _LEVELS.get(row["Difficulty_Level"].strip().lower())
    if level:
        course["level"] = level
    with contextlib.suppress(ValueError):  # "Not Calibrated"
        course["rating"] = min(max(float(rating), 0.0), 5.0)
    return {key: value for key, value in course.items() if value is not None}


def read_coursera_csv(path: Path) -> list[dict[str, Any]]:
    """All courses of the file, one per id: a slug scraped twice keeps its last row."""
    by_id: dict[str, dict[str, Any]] = {}
    for course in _rows(path):
        by_id.pop(course["id"], None)
        by_id[course["id"]] = course
    return list(by_id.values())


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield coursera_course(row)


def shared_data_dir() -> Path:
    """`../shared/data` beside the checkout (override with COURSEWISE_DATA_DIR)."""
    override = os.environ.get("COURSEWISE_DATA_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "shared" / "data"
