"""Reading catalogue files and mapping them onto the course contract (no API involved), and how
the ingestor turns the API's answers into per-line outcomes (against a stub transport)."""

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.ingest import (
    IngestError,
    Ingestor,
    IngestState,
    Mapping,
    Row,
    _record_task,
    detect_format,
    read_rows,
    summarise,
)

COURSERA_HEADER = [
    "Course_Name",
    "University",
    "Difficulty_Level",
    "Course_Rating",
    "Course _URL",
    "Course_Description",
    "Skills",
]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_map_options_are_checked() -> None:
    with pytest.raises(IngestError, match="FIELD=COLUMN"):
        Mapping.parse(None, ["title"], ";")
    with pytest.raises(IngestError, match="no course field 'name'"):
        Mapping.parse(None, ["name=Course Name"], ";")
    with pytest.raises(IngestError, match="unknown preset"):
        Mapping.parse("udemy", [], ";")
    assert Mapping.parse(None, [" title = Course Name "], ";").columns == {"title": "Course Name"}


def test_generic_csv_columns_are_renamed_split_and_typed(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "catalogue.csv",
        ["code", "name", "about", "hours", "tags", "price"],
        [
            ["c-1", "Intro to SQL", "Tables and queries", "12.5", "sql; databases ;", ""],
            ["c-2", "Statistics", "Means\nand medians", "a week", "", "10"],
        ],
    )
    mapping = Mapping.parse(
        None,
        ["id=code", "title=name", "description=about", "duration_hours=hours", "skills=tags"],
        ";",
    )
    rows = list(read_rows(path, "csv", mapping))
    assert [row.line for row in rows] == [2, 3]
    assert rows[0].course == {
        "id": "c-1",
        "title": "Intro to SQL",
        "description": "Tables and queries",
        "duration_hours": 12.5,
        "skills": ["sql", "databases"],
    }
    # Not a number: passed on as it is, for the API to say what is wrong with it.
    assert rows[1].course is not None
    assert rows[1].course["duration_hours"] == "a week"
    assert rows[1].course["price"] == 10.0
    assert "skills" not in rows[1].course


def test_csv_line_numbers_count_quoted_line_breaks(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "c.csv",
        ["id", "title", "description"],
        [["a", "A", "one\ntwo\nthree"], ["b", "B", "four"]],
    )
    rows = list(read_rows(path, "csv", Mapping()))
    assert [(row.line, row.course and row.course["id"]) for row in rows] == [(2, "a"), (5, "b")]


def test_jsonl_rows_keep_their_line_and_bad_lines_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"course_id": "x", "title": "X", "description": "d", "skills": ["a"]})
        + "\n\n{not json\n[1, 2]\n"
        + json.dumps({"course_id": "y", "title": "Y", "description": "d", "skills": "a;b"})
        + "\n"
    )
    rows = list(read_rows(path, "jsonl", Mapping.parse(None, ["id=course_id"], ";")))
    assert [row.line for row in rows] == [1, 3, 4, 5]
    assert rows[0].course == {"id": "x", "title": "X", "description": "d", "skills": ["a"]}
    assert rows[1].course is None and "not valid JSON" in (rows[1].error or "")
    assert rows[2].course is None and rows[2].error == "not a JSON object"
    assert rows[3].course is not None and rows[3].course["skills"] == ["a", "b"]


def test_coursera_preset_reads_the_scrapes_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "coursera.csv",
        COURSERA_HEADER,
        [
            [
                "Machine Learning",
                "Stanford University",
                "Advanced",
                "4.9",
                "https://www.coursera.org/learn/machine-learning",
                "Learn it.",
                "  regression  classification",
            ],
            ["Bad", "U", "Beginner", "Not Calibrated", "", "d", ""],
        ],
    )
    rows = list(read_rows(path, "csv", Mapping.parse("coursera", [], ";")))
    assert rows[0].course == {
        "id": "coursera:machine-learning",
        "title": "Machine Learning",
        "description": "Learn it.",
        "provider": "Stanford University",
        "url": "https://www.coursera.org/learn/machine-learning",
        "language": "en",
        "skills": ["regression", "classification"],
        "level": "advanced",
        "rating": 4.9,
    }
    assert rows[1].course is not None and "rating" not in rows[1].course


def test_format_comes_from_the_suffix_unless_given() -> None:
    assert detect_format(Path("a.CSV"), None) == "csv"
    assert detect_format(Path("a.ndjson"), None) == "jsonl"
    assert detect_format(Path("a.txt"), "jsonl") == "jsonl"
    with pytest.raises(IngestError, match="--format"):
        detect_format(Path("a.txt"), None)


def test_a_rejected_item_is_dropped_and_the_rest_resent(tmp_path: Path) -> None:
    sent: list[list[dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        items = [json.loads(line) for line in request.content.decode().split("\n")]
        sent.append(items)
        bad = [i for i, item in enumerate(items) if not item.get("title")]
        if bad:
            details = [
                {"loc": ["body", i, "title"], "code": "missing", "message": "Field required"}
                for i in bad
            ]
            return httpx.Response(
                422, json={"error": {"code": "x", "message": "m", "details": details}}
            )
        return httpx.Response(202, json={"task_id": f"task-{len(sent)}"})

    api = httpx.Client(base_url="http://api", transport=httpx.MockTransport(handler))
    state = IngestState(file="f", digest="d", options={})
    rows = [
        Row(2, {"id": "a", "title": "A"}),
        Row(3, {"id": "b"}),
        Row(4, None, "not valid JSON"),
        Row(5, {"id": "a", "title": "A again"}),
        Row(6, {"id": "c", "title": "C"}),
    ]
    Ingestor(api, progress=False)._send_chunk(rows, state)

    assert [[item["id"] for item in request] for request in sent] == [["b", "a", "c"], ["a", "c"]]
    assert sent[1][0]["title"] == "A again"  # the later row with the same id wins
    assert state.superseded == 1
    assert state.batches[0]["lines"] == [5, 6]
    assert sorted((f["line"], f["reason"]) for f in state.rejected) == [
        (3, "title: Field required"),
        (4, "not valid JSON"),
    ]


def test_task_outcomes_map_back_to_lines() -> None:
    batch: dict[str, Any] = {"task_id": "t", "lines": [7, 9, 12], "ids": ["a", "b", "c"],
                             "status": "queued", "applied": 0, "failures": []}  # fmt: skip
    task = {
        "status": "succeeded",
        "counts": {"received": 3, "applied": 2, "failed": 1},
        "errors": [{"index": 1, "course_id": "b", "code": "invalid", "reason": "no longer valid"}],
        "error": None,
    }
    _record_task(batch, task)
    state = IngestState(file="f", digest="d", options={}, batches=[batch])
    summary = summarise(state, total=3)
    assert summary.applied == 2
    assert [(f.line, f.id, f.reason) for f in summary.failures] == [(9, "b", "no longer valid")]

    failed = {**batch, "status": "queued", "failures": []}
    _record_task(failed, {**task, "status": "failed", "errors": [], "error": "Milvus down",
                          "counts": {"received": 3, "applied": 0, "failed": 3}})  # fmt: skip
    assert [f["line"] for f in failed["failures"]] == [7, 9, 12]
    assert {f["reason"] for f in failed["failures"]} == {"Milvus down"}
