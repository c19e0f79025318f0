"""`coursewise ingest` as an operator runs it: a real process against the running stack, killed
part-way and resumed, with rows the API rejects reported by their line in the file."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devstack.stack import BIN, ROOT, LocalStack
from shared.catalog.sources import shared_data_dir

COURSERA = shared_data_dir() / "coursera_courses.csv"
ROWS = 100
BATCH = 10


def coursewise(stack: LocalStack, *args: str) -> list[str]:
    key = ["--api-key", stack.api_key] if stack.api_key else []
    return [str(BIN / "coursewise"), "--api", stack.api_url, *key, *args]


@pytest.fixture
def coursera_sample(tmp_path: Path) -> tuple[Path, list[int]]:
    """The first rows of the Coursera scrape, with two rows the API must reject (their lines)."""
    if not COURSERA.exists():
        pytest.skip(f"{COURSERA} is absent")
    with COURSERA.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for _, row in zip(range(ROWS), reader, strict=False)]
    name, url = header.index("Course_Name"), header.index("Course _URL")
    rows[13][name] = ""  # no title and so no description either
    rows[47][url] = "https://www.coursera.org/learn/" + "x" * 300  # an id far too long
    path = tmp_path / "coursera.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    # Line numbers of the bad rows (descriptions hold no line breaks in this file).
    return path, [13 + 2, 47 + 2]


def test_ingest_resumes_after_a_kill_and_reports_rejected_rows(
    stack: LocalStack, api: httpx.Client, coursera_sample: tuple[Path, list[int]]
) -> None:
    path, bad_lines = coursera_sample
    state_path = path.with_name("progress.json")
    args = coursewise(
        stack, "ingest", str(path), "--preset", "coursera", "--batch-size", str(BATCH),
        "--state", str(state_path),
    )  # fmt: skip

    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        try:
            if json.loads(state_path.read_text())["batches"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    interrupted = json.loads(state_path.read_text())
    assert interrupted["batches"], "the first run sent nothing before it was killed"

    second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    print(second.stdout, second.stderr, file=sys.stderr)
    assert second.returncode == 2, second.stderr  # some rows failed
    state = json.loads(state_path.read_text())

    # Every request was sent once (a request re-sent after the kill has the same
    # Idempotency-Key and so the same task); every row is accounted for.
    task_ids = [batch["task_id"] for batch in state["batches"]]
    assert len(set(task_ids)) == ROWS // BATCH
    assert state["rows_done"] == ROWS
    assert all(batch["status"] == "succeeded" for batch in state["batches"])
    assert (
        f"{ROWS} row(s) read, {ROWS - 2 - state['superseded']} applied, 2 failed" in second.stdout
    )
    assert sorted(f["line"] for f in state["rejected"]) == bad_lines
    for line in bad_lines:
        assert f"  line {line}" in second.stdout
    assert "title" in second.stdout and "id" in second.stdout

    # What a person would check: the courses are there, searchable.
    sent_ids = [course_id for batch in state["batches"] for course_id in batch["ids"]]
    assert len(sent_ids) == ROWS - 2 - state["superseded"]
    for course_id in sent_ids[:: len(sent_ids) // 10]:
        course = api.get(f"/v1/courses/{course_id}")
        assert course.status_code == 200, course_id
        assert course.json()["index_state"] == "indexed"

    # Running it again does nothing new: the state says it is done.
    third = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert third.returncode == 2
    assert json.loads(state_path.read_text())["batches"] == state["batches"]


def test_ingest_jsonl_with_a_column_mapping(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "catalogue.jsonl"
    records = [
        {"code": f"jsonl-{i}", "name": f"Gardening {i}", "about": "Soil, seeds and seasons.",
         "tags": "gardening;plants", "hours": "3"}
        for i in range(5)
    ]  # fmt: skip
    records[2]["hours"] = "-4"  # the contract wants a non-negative duration
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n{broken\n")
    result = subprocess.run(
        coursewise(
            stack, "ingest", str(path), "--map", "id=code", "--map", "title=name",
            "--map", "description=about", "--map", "skills=tags",
            "--map", "duration_hours=hours",
        ),
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "6 row(s) read, 4 applied, 2 failed" in result.stdout
    assert "line 3 (jsonl-2): duration_hours:" in result.stdout
    assert "line 6: not valid JSON" in result.stdout
    course = api.get("/v1/courses/jsonl-4").json()
    assert course["skills"] == ["gardening", "plants"] and course["duration_hours"] == 3.0
    assert api.get("/v1/courses/jsonl-2").status_code == 404
    # Progress went to var/ingest/ under the directory it ran in, not beside the input.
    saved = [p.name for p in (tmp_path / "var" / "ingest").iterdir()]
    assert len(saved) == 1 and saved[0].startswith("catalogue.jsonl."), saved


def test_tasks_show_prints_a_task(stack: LocalStack, api: httpx.Client) -> None:
    listed = subprocess.run(
        coursewise(stack, "tasks", "list", "--limit", "1"), capture_output=True, text=True, cwd=ROOT
    )
    assert listed.returncode == 0
    task_id = listed.stdout.split()[0]
    shown = subprocess.run(
        coursewise(stack, "tasks", "show", task_id), capture_output=True, text=True, cwd=ROOT
    )
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["task_id"] == task_id
