"""`coursewise webhooks ...`: register, list and remove endpoints, read their delivery log
(over the HTTP API, with an admin key)."""

import argparse
import json
import sys
from typing import Any

import httpx

EVENTS = ["task.succeeded", "task.partially_failed", "task.failed", "task.cancelled"]


def _fail(response: httpx.Response) -> int:
    try:
        error = response.json()["error"]
        details = "; ".join(
            f"{'.'.join(map(str, d['loc']))}: {d['message']}" for d in error["details"]
        )
        print(f"{error['message']} {details}".strip(), file=sys.stderr)
    except (ValueError, KeyError):
        print(f"HTTP {response.status_code}: {response.text[:500]}", file=sys.stderr)
    return 1


def _add(api: httpx.Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"url": args.url, "secret": args.secret}
    if args.event:
        body["events"] = args.event
    response = api.post("/v1/webhooks", json=body)
    if response.status_code != 201:
        return _fail(response)
    print(json.dumps(response.json()))
    return 0


def _list(api: httpx.Client, _: argparse.Namespace) -> int:
    response = api.get("/v1/webhooks")
    if response.status_code != 200:
        return _fail(response)
    for hook in response.json()["items"]:
        print(f"{hook['id']}  {hook['url']}  {','.join(hook['events'])}")
    return 0


def _remove(api: httpx.Client, args: argparse.Namespace) -> int:
    response = api.delete(f"/v1/webhooks/{args.webhook_id}")
    if response.status_code != 204:
        return _fail(response)
    print(f"{args.webhook_id}  removed")
    return 0


def _deliveries(api: httpx.Client, args: argparse.Namespace) -> int:
    response = api.get(f"/v1/webhooks/{args.webhook_id}/deliveries", params={"limit": args.limit})
    if response.status_code != 200:
        return _fail(response)
    for item in response.json()["items"]:
        last = item["last_error"] or item["last_status_code"] or ""
        print(
            f"{item['id']}  {item['event']:<21} {item['status']:<9} "
            f"{item['attempts']} attempt(s)  task {item['task_id']}  {last}"
        )
    return 0


def add_parser(commands: Any) -> None:
    hooks = commands.add_parser("webhooks", help="endpoints told when tasks end").add_subparsers(
        dest="action", required=True
    )
    add = hooks.add_parser("add", help="register an endpoint (prints it, without the secret)")
    add.add_argument("--url", required=True)
    add.add_argument("--secret", required=True, help="16+ characters; signs every delivery")
    add.add_argument("--event", action="append", choices=EVENTS, help="repeatable; default all")
    add.set_defaults(handler=_add)
    listing = hooks.add_parser("list", help="registered endpoints")
    listing.set_defaults(handler=_list)
    remove = hooks.add_parser("remove", help="remove an endpoint and its delivery log")
    remove.add_argument("webhook_id")
    remove.set_defaults(handler=_remove)
    log = hooks.add_parser("deliveries", help="an endpoint's delivery log, newest first")
    log.add_argument("webhook_id")
    log.add_argument("--limit", type=int, default=20)
    log.set_defaults(handler=_deliveries)
