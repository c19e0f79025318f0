"""Who is calling, and may they: API key → Caller, scope check, rate limit.

The rules are `shared.access.decision.decide`'s (the fast path for cached courses applies the
same function); this module does the I/O it asks for: the key lookup, the shared rate counters.
Every route declares the scope it needs through one of the `*Dep` aliases at the bottom, so the
check runs before the route body and before any work is done. The caller is also kept on
`request.state` for dependencies that scope data to it (tasks, idempotency keys).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.access.decision import (
    LOOK_UP_KEY,
    Checked,
    CountFirst,
    bearer_token,
    counted,
    decide,
)
from shared.access.keys import Scope, hash_key
from shared.access.service import Caller, RateLimiter, caller_for, check_usable, find_key, utcnow
from shared.db import transaction
from shared.errors import CoursewiseError, Unauthenticated
from shared.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer cw_...`. Create one with "
    "`coursewise keys create` or `POST /v1/admin/keys`.",
)

_CACHE_MAX = 10_000


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


async def _look_up(request: Request, token: str) -> Checked:
    """What the database says of this key, cached (refusals too, with their reason)."""
    settings: Settings = request.app.state.settings
    cache: KeyCache = request.app.state.key_cache

    async def look_up() -> Checked:
        async with request.app.state.sessionmaker() as session:
            key = await find_key(session, token)
        try:
            usable = check_usable(key, utcnow())
        except Unauthenticated as refused:
            reason = refused.details[0].message
            cache.put(token, reason, None)
            return reason, None
        checked = caller_for(usable, settings.rate_limit_per_minute), usable.expires_at
        cache.put(token, *checked)
        return checked

    return await cache.load(token, look_up)


async def authorize(request: Request, scope: Scope | None) -> Caller:
    """The caller, if `decide` admits the request once the I/O it asks for is done; else the
    refusal, raised."""
    state = request.app.state
    settings: Settings = state.settings
    limiter: RateLimiter = state.rate_limiter
    authorization = request.headers.get("authorization")
    token = bearer_token(authorization)
    known = state.key_cache.get(token) if token is not None else None
    address = request.client.host if request.client else None
    outcome = decide(authorization, token, known, scope, settings, limiter, address)
    if outcome is LOOK_UP_KEY and token is not None:
        known = await _look_up(request, token)
        outcome = decide(authorization, token, known, scope, settings, limiter, address)
    if isinstance(outcome, CountFirst):
        async with transaction(state.sessionmaker) as session:
            wait = await limiter.count(session, outcome.caller, time.time())
        outcome = counted(outcome.caller, wait)
    if isinstance(outcome, CoursewiseError):
        raise outcome
    assert isinstance(outcome, Caller), outcome  # a key just looked up is known
    return outcome


def _require(scope: Scope | None) -> Callable[..., Awaitable[Caller]]:
    """`scope` None: any valid key (its own tasks). Reads may be anonymous if public."""

    async def dependency(
        request: Request,
        # Declares the scheme in the OpenAPI schema; the header is read by `authorize`.
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        caller = await authorize(request, scope)
        request.state.caller = caller
        return caller

    return dependency


ReaderDep = Annotated[Caller, Depends(_require(Scope.read))]
WriterDep = Annotated[Caller, Depends(_require(Scope.write))]
AdminDep = Annotated[Caller, Depends(_require(Scope.admin))]
KeyHolderDep = Annotated[Caller, Depends(_require(None))]
