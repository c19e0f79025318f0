"""Who is calling, and may they: API key → Caller, scope check, rate limit.

Every route declares the scope it needs through one of the `*Dep` aliases at the bottom, so
the check runs before the route body and before any work is done. The caller is also kept on
`request.state` for dependencies that scope data to it (tasks, idempotency keys).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.access.keys import Scope, hash_key
from shared.access.service import (
    Caller,
    RateLimiter,
    caller_for,
    check_usable,
    find_key,
    utcnow,
)
from shared.db import transaction
from shared.errors import ErrorDetail, InsufficientScope, RateLimited, Unauthenticated
from shared.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer cw_...`. Create one with "
    "`coursewise keys create` or `POST /v1/admin/keys`.",
)

_CACHE_MAX = 10_000


Checked = tuple[Caller | str, datetime | None]  # the caller, or why the key is refused; expiry


class KeyCache:
    """Recently checked keys, by hash, so a busy client costs no lookup per request."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        # A refused key is cached with the reason it was refused.
        self._entries: dict[str, tuple[float, Caller | str, datetime | None]] = {}
        self._loading: dict[str, asyncio.Future[Checked]] = {}

    async def load(self, secret: str, look_up: Callable[[], Awaitable[Checked]]) -> Checked:
        """One lookup per key at a time. When a busy key's entry expires, every request in
        flight misses it at once; they share one query instead of each taking a pool
        connection (a latency spike every `ttl_s`, measured)."""
        digest = hash_key(secret)
        pending = self._loading.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(look_up())
            self._loading[digest] = pending
            pending.add_done_callback(lambda _: self._loading.pop(digest, None))
        return await asyncio.shield(pending)

    def get(self, secret: str) -> tuple[Caller | str, datetime | None] | None:
        entry = self._entries.get(hash_key(secret))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]

    def put(self, secret: str, caller: Caller | str, expires_at: datetime | None) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= _CACHE_MAX:  # random keys must not grow memory without end
            self._entries.clear()
        self._entries[hash_key(secret)] = (time.monotonic() + self.ttl_s, caller, expires_at)


async def _identify(request: Request, token: str | None, anonymous_ok: bool) -> Caller:
    settings: Settings = request.app.state.settings
    if token is None:
        if anonymous_ok:
            address = request.client.host if request.client else "unknown"
            return Caller(
                key_id=None,
                owner=None,
                scopes=frozenset({Scope.read.value}),
                rate_limit_per_minute=settings.anonymous_rate_limit_per_minute,
                address=address,
            )
        raise Unauthenticated("No API key was sent.")
    cache: KeyCache = request.app.state.key_cache
    cached = cache.get(token)
    now = utcnow()
    if cached is None:

        async def look_up() -> Checked:
            async with request.app.state.sessionmaker() as session:
                key = await find_key(session, token)
            try:
                usable = check_usable(key, now)
            except Unauthenticated as refused:
                reason = refused.details[0].message
                cache.put(token, reason, None)
                return reason, None
            checked = caller_for(usable, settings.rate_limit_per_minute), usable.expires_at
            cache.put(token, *checked)
            return checked

        cached = await cache.load(token, look_up)
    known, expires_at = cached
    if isinstance(known, str):
        raise Unauthenticated(known)
    if expires_at is not None and expires_at <= now:
        raise Unauthenticated("The API key has expired.")
    return known


async def _rate_limit(request: Request, caller: Caller) -> None:
    settings: Settings = request.app.state.settings
    if not settings.rate_limit_enabled:
        return
    limiter: RateLimiter = request.app.state.rate_limiter
    now = time.time()
    wait = limiter.decide_locally(caller, now)
    if wait == 0:
        return
    if wait is None:
        async with transaction(request.app.state.sessionmaker) as session:
            wait = await limiter.count(session, caller, now)
    if wait is not None:
        raise RateLimited(
            f"Rate limit of {caller.rate_limit_per_minute} requests per minute exceeded; "
            f"retry in {wait} s.",
            [ErrorDetail(["header", "authorization"], "rate_limited", "this caller's limit")],
            retry_after_s=wait,
        )


def _require(scope: Scope | None) -> Callable[..., Awaitable[Caller]]:
    """`scope` None: any valid key (its own tasks). Reads may be anonymous if public."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        settings: Settings = request.app.state.settings
        token = credentials.credentials if credentials is not None else None
        if token is None and request.headers.get("authorization"):
            raise Unauthenticated("The Authorization header is not a Bearer API key.")
        anonymous_ok = scope is Scope.read and settings.public_reads
        caller = await _identify(request, token, anonymous_ok)
        if scope is not None and not caller.has(scope):
            raise InsufficientScope(scope.value)
        await _rate_limit(request, caller)
        request.state.caller = caller
        return caller

    return dependency


ReaderDep = Annotated[Caller, Depends(_require(Scope.read))]
WriterDep = Annotated[Caller, Depends(_require(Scope.write))]
AdminDep = Annotated[Caller, Depends(_require(Scope.admin))]
KeyHolderDep = Annotated[Caller, Depends(_require(None))]
