"""`coursewise ingest FILE`: a CSV or JSONL catalogue, mapped onto the course contract, sent through
the write API as NDJSON bulk requests, followed to the end of its tasks, resumable.

Every row is accounted for by its line in the file: applied, failed (with the reason: a 422
detail of the bulk request, or a per-item error of its task), or superseded by a later row with
the same id. Progress is saved after every request in a state file beside the input, so an
interrupted run resumes where it stopped (the state file is under var/ingest/ or --state); each
request carries an Idempotency-Key derived from
its body, so a request whose answer was lost is not applied twice.
"""

import contextlib
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from shared.catalog.fields import BY_NAME, NAMES
from shared.catalog.sources import coursera_course

# A task's final states (a cancelled batch's rows count as failed, with the reason).
ENDED = ("succeeded", "failed", "cancelled")

PRESETS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"coursera": coursera_course}
STATE_VERSION = 1


class IngestError(Exception):
    """Stops the run; the state file keeps what was done, so it can be resumed."""


@dataclass
class Row:
    line: int
    course: dict[str, Any] | None
    error: str | None = None


@dataclass
class Mapping:
    """How a record of the file becomes a course: a preset, or fields read from columns (a field
    with no `--map` is read from the column of the same name)."""

    preset: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    list_separator: str = ";"

    @classmethod
    def parse(cls, preset: str | None, pairs: list[str], list_separator: str) -> "Mapping":
        columns: dict[str, str] = {}
        for pair in pairs:
            target, sep, source = pair.partition("=")
            target, source = target.strip(), source.strip()
            if not sep or not target or not source:
                raise IngestError(f"--map takes FIELD=COLUMN, not {pair!r}")
            if target not in BY_NAME:
                raise IngestError(
                    f"--map {pair!r}: no course field {target!r} ({', '.join(NAMES)})"
                )
            columns[target] = source
        if preset is not None and preset not in PRESETS:
            raise IngestError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        return cls(preset, columns, list_separator)

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.preset is not None:
            course = PRESETS[self.preset](record)
            for target, source in self.columns.items():
                if source in record:
                    course[target] = self._value(target, record[source])
            return {k: v for k, v in course.items() if v is not None}
        course = {}
        for target in NAMES:
            source = self.columns.get(target, target)
            if source in record:
                value = self._value(target, record[source])
                if value is not None:
                    course[target] = value
        return course

    def _value(self, target: str, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                return None
            kind = BY_NAME[target].kind
            if kind == "number":
                with contextlib.suppress(ValueError):
                    return float(value)
                return value  # let the API say what is wrong with it
            if kind == "list":
                return [s.strip() for s in value.split(self.list_separator) if s.strip()]
            if kind == "json":
                with contextlib.suppress(ValueError):
                    return json.loads(value)
        return value


def detect_format(path: Path, explicit: str | None) -> str:
    if explicit:
        return explicit
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise IngestError(f"cannot tell the format of {path.name}: pass --format csv or jsonl")


def read_rows(path: Path, format: str, mapping: Mapping) -> Iterator[Row]:
    """Rows in file order, each with the line it starts on (the CSV header is line 1)."""
    if format == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:  # reads the header, so line numbers start right
                return
            while True:
                start = reader.line_num + 1
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield Row(start, None, f"unreadable CSV: {exc}")
                    continue
                yield _mapped(start, record, mapping)
    else:
        with path.open(encoding="utf-8-sig") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except ValueError as exc:
                    yield Row(number, None, f"not valid JSON: {exc}")
                    continue
                if not isinstance(record, dict):
                    yield Row(number, None, "not a JSON object")
                    continue
                yield _mapped(number, record, mapping)


def _mapped(line: int, record: dict[str, Any], mapping: Mapping) -> Row:
    try:
        return Row(line, mapping.apply(record))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Row(line, None, f"cannot map the row: {type(exc).__name__}: {exc}")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Failure:
    line: int
    id: str | None
    reason: str


@dataclass
class Batch:
    task_id: str
    lines: list[int]
    ids: list[str]
    status: str = "queued"
    applied: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class IngestState:
    file: str
    digest: str
    options: dict[str, Any]
    rows_done: int = 0
    batches: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    superseded: int = 0
    version: int = STATE_VERSION

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(asdict(self)))
        os.replace(partial, path)  # a kill mid-write leaves the previous state whole

    @classmethod
    def load(cls, path: Path) -> "IngestState | None":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise IngestError(f"state file {path} is unreadable ({exc}); use --restart") from None
        if data.get("version") != STATE_VERSION:
            raise IngestError(f"state file {path} is from another version; use --restart")
        return cls(**data)


def default_state_path(path: Path) -> Path:
    """Under var/ingest/ of the current directory (COURSEWISE_INGEST_STATE_DIR), not beside the
    input: catalogue files often sit on read-only or shared storage."""
    directory = Path(os.environ.get("COURSEWISE_INGEST_STATE_DIR", "var/ingest"))
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return directory / f"{path.name}.{key}.json"


@dataclass
class Summary:
    rows: int
    applied: int
    failures: list[Failure]
    superseded: int
    tasks: int


class Ingestor:
    def __init__(
        self,
        api: httpx.Client,
        *,
        batch_size: int = 500,
        poll_s: float = 0.5,
        timeout_s: float = 3600,
        attempts: int = 5,
        progress: bool | None = None,
    ) -> None:
        self.api = api
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.attempts = attempts
        # None: a bar only when stderr is a terminal.
        self.progress = progress

    # --- sending ------------------------------------------------------------------------------
    def send(self, rows: Iterator[Row], state: IngestState, state_path: Path, total: int) -> None:
        with tqdm(
            total=total,
            initial=state.rows_done,
            unit="row",
            desc="sending",
            disable=None if self.progress is None else not self.progress,
            file=sys.stderr,
        ) as bar:
            for _ in range(state.rows_done):  # resuming: skip what was sent before
                next(rows, None)
            while True:
                chunk = [row for _, row in zip(range(self.batch_size), rows, strict=False)]
                if not chunk:
                    return
                self._send_chunk(chunk, state)
                state.rows_done += len(chunk)
                state.save(state_path)
                bar.update(len(chunk))

    def _send_chunk(self, chunk: list[Row], state: IngestState) -> None:
        good: list[Row] = []
        for row in chunk:
            if row.course is None:
                state.rejected.append(asdict(Failure(row.line, None, row.error or "unreadable")))
            else:
                good.append(row)
        # A later row with the same id replaces an earlier one, as it would if sent after it; one
        # request may not hold an id twice.
        keys = [_id_key(_cid(row)) for row in good]
        last = {key: index for index, key in enumerate(keys)}
        kept = [row for index, row in enumerate(good) if last[keys[index]] == index]
        state.superseded += len(good) - len(kept)
        while kept:
            response = self._post(kept)
            if response.status_code == 202:
                task_id = response.json()["task_id"]
                lines = [row.line for row in kept]
                ids = [str(_cid(row)) for row in kept]
                state.batches.append(asdict(Batch(task_id, lines, ids)))
                return
            if response.status_code == 422:
                bad = _rejected_indexes(response.json(), len(kept))
                if not bad:  # nothing points at an item: the request as a whole was refused
                    raise IngestError(f"the API refused a bulk request: {response.text[:500]}")
                for index, reason in sorted(bad.items()):
                    row = kept[index]
                    state.rejected.append(asdict(Failure(row.line, _str_id(row), reason)))
                kept = [row for index, row in enumerate(kept) if index not in bad]
                continue
            raise IngestError(_refusal(response))

    def _post(self, rows: list[Row]) -> httpx.Response:
        body = "\n".join(json.dumps(row.course, ensure_ascii=False) for row in rows).encode()
        headers = {
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": "ingest-" + hashlib.sha256(body).hexdigest()[:48],
        }
        delay = 1.0
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.api.post("/v1/courses/bulk", content=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt == self.attempts:
                    raise IngestError(f"the API is unreachable: {exc!r}") from None
            else:
                if response.status_code not in (429, 502, 503, 504):
                    return response
                if attempt == self.attempts:
                    return response
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
            time.sleep(delay)
            delay = min(delay * 2, 30)
        raise AssertionError("unreachable")

    # --- waiting ------------------------------------------------------------------------------
    def wait(self, state: IngestState, state_path: Path) -> None:
        pending = [b for b in state.batches if b["status"] not in ENDED]
        total = sum(len(b["lines"]) for b in state.batches)
        done = total - sum(len(b["lines"]) for b in pending)
        deadline = time.monotonic() + self.timeout_s
        with tqdm(
            total=total,
            initial=done,
            unit="row",
            desc="applying",
            disable=None if self.progress is None else not self.progress,
            file=sys.stderr,
        ) as bar:
            shown = 0  # rows of the first pending batch already on the bar
            while pending:
                batch = pending[0]
                task, shown = self._follow(batch, bar, deadline, shown)
                if task["status"] in ENDED:
                    _record_task(batch, task)
                    state.save(state_path)
                    bar.update(len(batch["lines"]) - shown)
                    pending.pop(0)
                    shown = 0
                    continue
                if time.monotonic() > deadline:
                    raise IngestError(
                        f"task {batch['task_id']} is still {task['status']} after "
                        f"{self.timeout_s:.0f}s; run the same command again to keep waiting"
                    )
                time.sleep(self.poll_s)

    def _follow(
        self, batch: dict[str, Any], bar: Any, deadline: float, shown: int
    ) -> tuple[dict[str, Any], int]:
        """The batch's task once it ended (or as last seen, if its stream closed first) and the
        rows shown on the bar meanwhile: its event stream (GET /v1/tasks/{id}/events) moves the
        bar as the task's counts grow, without polling. A broken stream falls back to one look."""
        rows = len(batch["lines"])
        task: dict[str, Any] | None = None
        url = f"/v1/tasks/{batch['task_id']}/events"
        left = max(1.0, deadline - time.monotonic())
        try:
            with self.api.stream("GET", url, timeout=httpx.Timeout(30, read=left)) as response:
                if response.status_code != 200:
                    response.read()
                    raise IngestError(_refusal(response))
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    task = json.loads(line.removeprefix("data:"))
                    counts = task["counts"]
                    done = counts["applied"] + counts["failed"]
                    progress = min(rows, rows * done // max(1, counts["received"]))
                    if progress > shown and task["status"] not in ENDED:
                        bar.update(progress - shown)
                        shown = progress
        except httpx.TransportError:
            task = None
        if task is None:
            response = self.api.get(f"/v1/tasks/{batch['task_id']}")
            if response.status_code != 200:
                raise IngestError(_refusal(response))
            task = response.json()
        return task, shown

    # --- the whole run ------------------------------------------------------------------------
    def run(
        self,
        path: Path,
        format: str,
        mapping: Mapping,
        state_path: Path,
        *,
        restart: bool = False,
        wait: bool = True,
    ) -> Summary:
        digest = file_digest(path)
        options = {
            "format": format,
            "preset": mapping.preset,
            "map": mapping.columns,
            "list_separator": mapping.list_separator,
            "batch_size": self.batch_size,
        }
        if restart:
            state_path.unlink(missing_ok=True)
        state = IngestState.load(state_path)
        if state is not None and (state.digest != digest or state.options != options):
            raise IngestError(
                f"{state_path} records a run over another version of the file or with other "
                "options; pass --restart to start over"
            )
        if state is None:
            state = IngestState(file=str(path), digest=digest, options=options)
            state.save(state_path)
        total = sum(1 for _ in read_rows(path, format, mapping))
        self.send(read_rows(path, format, mapping), state, state_path, total)
        if wait:
            self.wait(state, state_path)
        return summarise(state, total)


def summarise(state: IngestState, total: int) -> Summary:
    failures = [Failure(**f) for f in state.rejected]
    applied = 0
    for batch in state.batches:
        applied += batch["applied"]
        failures.extend(Failure(**f) for f in batch["failures"])
    failures.sort(key=lambda f: f.line)
    return Summary(total, applied, failures, state.superseded, len(state.batches))


def _record_task(batch: dict[str, Any], task: dict[str, Any]) -> None:
    lines, ids = batch["lines"], batch["ids"]
    failures: dict[int, dict[str, Any]] = {}
    for error in task["errors"]:
        index = error["index"]
        if 0 <= index < len(lines):
            failures[index] = asdict(Failure(lines[index], ids[index], error["reason"]))
    if task["status"] in ("failed", "cancelled"):
        reason = task["error"] or "the task failed"
        for index, line in enumerate(lines):
            failures.setdefault(index, asdict(Failure(line, ids[index], reason)))
    batch["status"] = task["status"]
    batch["applied"] = task["counts"]["applied"]
    batch["failures"] = [failures[i] for i in sorted(failures)]


def _rejected_indexes(body: dict[str, Any], count: int) -> dict[int, str]:
    """Item index -> the reasons the API gave for it, from a 422's details."""
    bad: dict[int, list[str]] = {}
    for detail in body.get("error", {}).get("details", []):
        loc = detail.get("loc", [])
        if len(loc) >= 2 and loc[0] == "body" and isinstance(loc[1], int) and loc[1] < count:
            where = ".".join(str(part) for part in loc[2:])
            message = detail.get("message", detail.get("code", "invalid"))
            bad.setdefault(loc[1], []).append(f"{where}: {message}" if where else message)
    return {index: "; ".join(reasons) for index, reasons in bad.items()}


def _refusal(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    hint = " (set --api-key or COURSEWISE_API_KEY)" if response.status_code in (401, 403) else ""
    return f"the API answered {response.status_code}: {message}{hint}"


def _cid(row: Row) -> Any:
    assert row.course is not None
    return row.course.get("id")


def _str_id(row: Row) -> str | None:
    value = _cid(row)
    return value if isinstance(value, str) else None


def _id_key(value: Any) -> Any:
    # Rows without a usable id are never merged: each gets its own key (and its own 422).
    return value.strip() if isinstance(value, str) else object()
