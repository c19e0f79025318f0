"""`coursewise`: everyday operator commands, over the HTTP API (and the broker for jobs).

coursewise ingest FILE [--preset coursera | --map FIELD=COLUMN ...]   # CSV or JSONL catalogue
coursewise tasks list --status failed
coursewise tasks show TASK_ID
coursewise tasks retry TASK_ID [TASK_ID ...]
coursewise tasks retry --all-failed
coursewise tasks cancel TASK_ID [TASK_ID ...] | --type course.upsert [--before TIME]
coursewise webhooks add --url URL --secret SECRET [--event task.failed ...]
coursewise webhooks list | remove ID | deliveries ID
coursewise reconcile            # queue a reconciliation of Milvus with PostgreSQL now
coursewise reindex              # the same: re-index what is missing, stale or unindexed
coursewise keys create --name acme --scope write [--expires-in 90d]
coursewise keys list | coursewise keys revoke KEY_ID

HTTP commands send COURSEWISE_API_KEY (or --api-key) as a Bearer token.
"""

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from cli import keys as keys_cli
from cli import webhooks as webhooks_cli
from cli.ingest import (
    PRESETS,
    IngestError,
    Ingestor,
    Mapping,
    Summary,
    default_state_path,
    detect_format,
)
from shared.messaging import RECONCILE_INDEX, build_celery
from shared.settings import get_settings


def _failed_tasks(api: httpx.Client) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "failed", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/tasks", params=params).raise_for_status().json()
        yield from page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return


def _list(api: httpx.Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.type:
        params["type"] = args.type
    for task in api.get("/v1/tasks", params=params).raise_for_status().json()["items"]:
        counts = task["counts"]
        reason = f"  {task['error']}" if task["error"] else ""
        print(
            f"{task['task_id']}  {task['status']:<10} {task['type']:<18} "
            f"{counts['applied']}/{counts['received']} applied, {counts['failed']} failed{reason}"
        )
    return 0


def _show(api: httpx.Client, args: argparse.Namespace) -> int:
    response = api.get(f"/v1/tasks/{args.task_id}")
    if response.status_code != 200:
        print(response.json()["error"]["message"], file=sys.stderr)
        return 1
    print(json.dumps(response.json(), indent=2))
    return 0


def _print_summary(path: Path, summary: Summary, shown: int) -> None:
    failed = len(summary.failures)
    print(
        f"{path.name}: {summary.rows} row(s) read, {summary.applied} applied, {failed} failed, "
        f"{summary.superseded} superseded by a later row with the same id "
        f"({summary.tasks} bulk request(s))"
    )
    if failed:
        print("failed rows:")
        for failure in summary.failures[:shown]:
            course = f" ({failure.id})" if failure.id else ""
            print(f"  line {failure.line}{course}: {failure.reason}")
        if failed > shown:
            print(f"  ... and {failed - shown} more (--show-failures N, or the state file)")


def _ingest(api: httpx.Client, args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        if not path.is_file():
            raise IngestError(f"no such file: {path}")
        mapping = Mapping.parse(args.preset, args.map, args.list_separator)
        state_path = Path(args.state) if args.state else default_state_path(path)
        ingestor = Ingestor(
            api, batch_size=args.batch_size, timeout_s=args.timeout, progress=args.progress
        )
        summary = ingestor.run(
            path,
            detect_format(path, args.format),
            mapping,
            state_path,
            restart=args.restart,
            wait=not args.no_wait,
        )
    except IngestError as exc:
        print(f"coursewise ingest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    _print_summary(path, summary, args.show_failures)
    print(f"state: {state_path}")
    return 2 if summary.failures else 0


def _retry(api: httpx.Client, args: argparse.Namespace) -> int:
    ids = [task["task_id"] for task in _failed_tasks(api)] if args.all_failed else args.task_ids
    failures = 0
    for task_id in ids:
        response = api.post(f"/v1/tasks/{task_id}/retry")
        if response.status_code == 202:
            print(f"{task_id}  queued again")
        else:
            failures += 1
            print(f"{task_id}  {response.json()['error']['message']}", file=sys.stderr)
    print(f"{len(ids) - failures} task(s) queued again, {failures} refused")
    return 1 if failures else 0


def _cancel(api: httpx.Client, args: argparse.Namespace) -> int:
    if not args.task_ids:
        body: dict[str, Any] = {"statuses": ["queued"]}
        if args.type:
            body["types"] = args.type
        if args.before:
            body["enqueued_before"] = args.before
        response = api.post("/v1/tasks/cancel", json=body)
        if response.status_code != 200:
            print(response.json()["error"]["message"], file=sys.stderr)
            return 1
        for task_id in response.json()["task_ids"]:
            print(f"{task_id}  cancelled")
        print(f"{response.json()['cancelled']} task(s) cancelled")
        return 0
    refused = 0
    for task_id in args.task_ids:
        response = api.post(f"/v1/tasks/{task_id}/cancel")
        if response.status_code == 200:
            print(f"{task_id}  cancelled")
        else:
            refused += 1
            print(f"{task_id}  {response.json()['error']['message']}", file=sys.stderr)
    print(f"{len(args.task_ids) - refused} task(s) cancelled, {refused} refused")
    return 1 if refused else 0


def _reconcile(_: httpx.Client, __: argparse.Namespace) -> int:
    celery = build_celery(get_settings())
    try:
        result = celery.send_task(RECONCILE_INDEX, retry=False)
    finally:
        celery.close()
    print(json.dumps({"queued": RECONCILE_INDEX, "id": result.id}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coursewise", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--api", default=os.environ.get("COURSEWISE_API_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("COURSEWISE_API_KEY"),
        help="sent as a Bearer token (default: $COURSEWISE_API_KEY)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser(
        "ingest",
        help="load a CSV or JSONL catalogue through the write API (resumable)",
        description="Columns named like the course fields are read as they are; --map renames. "
        "Lists (skills) are split on --list-separator. Exit status: 0 all applied, 2 some rows "
        "failed (listed), 1 stopped (run again to resume).",
    )
    ingest.add_argument("file")
    ingest.add_argument("--format", choices=["csv", "jsonl"], help="default: from the suffix")
    ingest.add_argument("--preset", choices=sorted(PRESETS), help="a built-in column mapping")
    ingest.add_argument(
        "--map", action="append", default=[], metavar="FIELD=COLUMN", help="repeatable"
    )
    ingest.add_argument("--list-separator", default=";")
    ingest.add_argument("--batch-size", type=int, default=500, help="courses per bulk request")
    ingest.add_argument(
        "--state", help="progress file (default: var/ingest/FILE.<hash>.json in this directory)"
    )
    ingest.add_argument("--restart", action="store_true", help="forget earlier progress")
    ingest.add_argument("--no-wait", action="store_true", help="send, but do not wait for tasks")
    ingest.add_argument("--timeout", type=float, default=3600, help="seconds to wait for tasks")
    ingest.add_argument("--show-failures", type=int, default=50)
    ingest.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )
    ingest.set_defaults(handler=_ingest)
    tasks = commands.add_parser("tasks", help="the task ledger").add_subparsers(
        dest="action", required=True
    )
    listing = tasks.add_parser("list", help="tasks, newest first")
    listing.add_argument(
        "--status", choices=["queued", "processing", "succeeded", "failed", "cancelled"]
    )
    listing.add_argument("--type")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(handler=_list)
    show = tasks.add_parser("show", help="one task, with its per-item errors")
    show.add_argument("task_id")
    show.set_defaults(handler=_show)
    retry = tasks.add_parser("retry", help="queue failed tasks again")
    retry.add_argument("task_ids", nargs="*")
    retry.add_argument("--all-failed", action="store_true")
    retry.set_defaults(handler=_retry)
    cancel = tasks.add_parser("cancel", help="cancel queued tasks: by id, or by a filter")
    cancel.add_argument("task_ids", nargs="*")
    cancel.add_argument("--type", action="append", help="with no ids: queued tasks of this type")
    cancel.add_argument("--before", help="with no ids: enqueued before this ISO time (with zone)")
    cancel.set_defaults(handler=_cancel)
    reconcile = commands.add_parser("reconcile", help="repair Milvus from PostgreSQL now")
    reconcile.set_defaults(handler=_reconcile)
    reindex = commands.add_parser(
        "reindex", help="re-index courses missing, stale or unindexed in Milvus (= reconcile)"
    )
    reindex.set_defaults(handler=_reconcile)
    keys_cli.add_parser(commands)
    webhooks_cli.add_parser(commands)

    args = parser.parse_args(argv)
    if (
        args.command == "tasks"
        and args.action == "retry"
        and not (args.task_ids or args.all_failed)
    ):
        parser.error("name task ids, or --all-failed")
    if (
        args.command == "tasks"
        and args.action == "cancel"
        and not (args.task_ids or args.type or args.before)
    ):
        parser.error("name task ids, or a filter (--type, --before)")
    if args.command == "keys":
        return keys_cli.run(args)
    if args.command == "ingest" and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    with httpx.Client(base_url=args.api, timeout=60, headers=headers) as api:
        return int(args.handler(api, args))


if __name__ == "__main__":
    sys.exit(main())
