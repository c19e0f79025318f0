"""The MOOCCube sample (../shared/data/mooccube): 698 courses with descriptions and 42k real
enrolments, as courses and interactions of our contract."""

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from shared.catalog.sources import shared_data_dir


def data_dir() -> Path:
    return shared_data_dir() / "mooccube"


def available() -> bool:
    return (data_dir() / "courses.jsonl").exists() and (data_dir() / "interactions.jsonl").exists()


def course_id(index: int | str) -> str:
    return f"mooccube:{index}"


def learner_id(user: int | str) -> str:
    return f"mooc-{user}"


def courses() -> list[dict[str, Any]]:
    found = []
    for line in (data_dir() / "courses.jsonl").read_text().splitlines():
        row = json.loads(line)
        title = " ".join(str(row["name"]).split())[:300] or f"Course {row['course_idx2']}"
        about = " ".join(str(row.get("about") or "").split())[:20_000]
        found.append(
            {
                "id": course_id(row["course_idx2"]),
                "title": title,
                "description": about or title,
                "metadata": {"mode": row.get("mode")},
            }
        )
    return found


def enrolments() -> dict[str, list[str]]:
    """Each learner's enrolled courses, in file order (the data has no timestamps)."""
    by_learner: dict[str, list[str]] = defaultdict(list)
    for line in (data_dir() / "interactions.jsonl").read_text().splitlines():
        row = json.loads(line)
        courses_ = by_learner[learner_id(row["user"])]
        if course_id(row["item"]) not in courses_:
            courses_.append(course_id(row["item"]))
    return dict(by_learner)
