"""`coursewise keys ...`: API key management straight in the database.

It needs database access rather than a key, which is how the first admin key is made (and how
a locked-out operator recovers).
"""

import argparse
import asyncio
import json
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.access.keys import Scope
from shared.access.repository import ApiKeyRepository
from shared.access.schemas import key_out
from shared.access.service import create_key, revoke_key
from shared.db import create_engine, create_sessionmaker, transaction
from shared.settings import Settings, get_settings

_DURATION = re.compile(r"^(\d+)([dhm])$")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError("use a number followed by d, h or m, e.g. 90d")
    amount, unit = int(match[1]), match[2]
    return {
        "d": timedelta(days=amount),
        "h": timedelta(hours=amount),
        "m": timedelta(minutes=amount),
    }[unit]


async def create(
    settings: Settings,
    *,
    name: str,
    owner: str | None,
    scopes: list[Scope],
    expires_in: timedelta | None = None,
    rate_limit_per_minute: int | None = None,
) -> dict[str, Any]:
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            key, secret = await create_key(
                session,
                name=name,
                owner=owner or name,
                scopes=scopes,
                expires_at=datetime.now(UTC) + expires_in if expires_in else None,
                rate_limit_per_minute=rate_limit_per_minute,
            )
            return {**key_out(key).model_dump(mode="json"), "key": secret}
    finally:
        await engine.dispose()


async def _list(settings: Settings, include_revoked: bool) -> list[dict[str, Any]]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            keys = await ApiKeyRepository(session).all(include_revoked=include_revoked)
            return [key_out(key).model_dump(mode="json") for key in keys]
    finally:
        await engine.dispose()


async def _revoke(settings: Settings, key_id: uuid.UUID) -> dict[str, Any]:
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return key_out(await revoke_key(session, key_id)).model_dump(mode="json")
    finally:
        await engine.dispose()


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.action == "create":
        created = asyncio.run(
            create(
                settings,
                name=args.name,
                owner=args.owner,
                scopes=[Scope(scope) for scope in args.scope],
                expires_in=args.expires_in,
                rate_limit_per_minute=args.rate_limit,
            )
        )
        print(json.dumps(created, indent=2), flush=True)
        print("Store the key now: it is not shown again.", file=sys.stderr)
    elif args.action == "list":
        for key in asyncio.run(_list(settings, args.include_revoked)):
            state = "revoked" if key["revoked_at"] else "active"
            expires = key["expires_at"] or "never"
            print(
                f"{key['id']}  {key['prefix']}…  {state:<7}  {','.join(key['scopes']):<16} "
                f"owner={key['owner']}  name={key['name']}  expires={expires}"
            )
    else:
        print(json.dumps(asyncio.run(_revoke(settings, args.key_id)), indent=2))
    return 0


def add_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys (works on the database directly)")
    actions = keys.add_subparsers(dest="action", required=True)
    create_parser = actions.add_parser("create", help="make a key; its secret is printed once")
    create_parser.add_argument("--name", required=True)
    create_parser.add_argument("--owner", help="defaults to the name")
    create_parser.add_argument(
        "--scope", action="append", required=True, choices=[s.value for s in Scope]
    )
    create_parser.add_argument("--expires-in", type=parse_duration, help="e.g. 90d, 12h")
    create_parser.add_argument("--rate-limit", type=int, help="requests per minute")
    listing = actions.add_parser("list", help="keys, without their secrets")
    listing.add_argument("--include-revoked", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=uuid.UUID)
    keys.set_defaults(handler=None, keys=True)
