"""`coursewise`: everyday operator commands, over the HTTP API (and the broker for jobs).

coursewise tasks list --status failed
coursewise tasks retry TASK_ID [TASK_ID ...]
coursewise tasks retry --all-failed
coursewise reconcile            # queue a reconciliation of Milvus with PostgreSQL now
coursewise keys create --name acme --scope write [--expires-in 90d]
coursewise keys list | coursewise keys revoke KEY_ID

HTTP commands send COURSEWISE_API_KEY (or --api-key) as a Bearer token.
"""

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from api import keys_cli
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
    tasks = commands.add_parser("tasks", help="the task ledger").add_subparsers(
        dest="action", required=True
    )
    listing = tasks.add_parser("list", help="tasks, newest first")
    listing.add_argument("--status", choices=["queued", "processing", "succeeded", "failed"])
    listing.add_argument("--type")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(handler=_list)
    retry = tasks.add_parser("retry", help="queue failed tasks again")
    retry.add_argument("task_ids", nargs="*")
    retry.add_argument("--all-failed", action="store_true")
    retry.set_defaults(handler=_retry)
    reconcile = commands.add_parser("reconcile", help="repair Milvus from PostgreSQL now")
    reconcile.set_defaults(handler=_reconcile)
    keys_cli.add_parser(commands)

    args = parser.parse_args(argv)
    if (
        args.command == "tasks"
        and args.action == "retry"
        and not (args.task_ids or args.all_failed)
    ):
        parser.error("name task ids, or --all-failed")
    if args.command == "keys":
        return keys_cli.run(args)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    with httpx.Client(base_url=args.api, timeout=30, headers=headers) as api:
        return int(args.handler(api, args))


if __name__ == "__main__":
    sys.exit(main())
