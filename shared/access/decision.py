"""Whether a request may go on: the one access decision, made from what this process knows.

Both the routed check (api/auth.py) and the answer for cached courses before routing
(api/fast_reads.py) call `decide`, so an access rule lives here and nowhere else. What cannot be
decided without I/O, `decide` says: a key this process has not looked up yet (`LOOK_UP_KEY`), a
rate limit that needs the shared counters (`CountFirst`). The routed path does that I/O and
applies the outcome; the fast path hands the request to the route instead.

Nothing is allocated on the way to an admission of a known key (the fast path's hit path): the
token, the caller and the expiry are the caches' own objects.
"""

import enum
import time
from dataclasses import dataclass
from datetime import datetime

from shared.access.keys import Scope
from shared.access.service import Caller, RateLimiter, utcnow
from shared.errors import (
    CoursewiseError,
    ErrorDetail,
    InsufficientScope,
    RateLimited,
    Unauthenticated,
)
from shared.settings import Settings

_ANONYMOUS_SCOPES = frozenset({Scope.read.value})

Checked = tuple[Caller | str, datetime | None]
"""A looked-up key: the caller, or why the key is refused; when it expires."""


class Pending(enum.Enum):
    look_up_key = "look_up_key"


LOOK_UP_KEY = Pending.look_up_key
"""The key is not known in this process: look it up (then decide again with what was found)."""


@dataclass(frozen=True, slots=True)
class CountFirst:
    """The caller may go on if the shared counters admit this request (see `counted`)."""

    caller: Caller


Decision = Caller | CoursewiseError | Pending | CountFirst
"""Admitted (the caller), refused (the error to answer with), or what must be done first."""


def bearer_token(authorization: str | None) -> str | None:
    """The API key in an `Authorization` header value, parsed as FastAPI's HTTPBearer does."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else None


def decide(
    authorization: str | None,
    token: str | None,
    known: Checked | None,
    scope: Scope | None,
    settings: Settings,
    limiter: RateLimiter,
    address: str | None,
    *,
    count_refusal: bool = True,
) -> Decision:
    """May this request go on?

    `authorization` is the header as sent, `token` what `bearer_token` found in it, `known`
    what the key cache holds for it. `scope` None: any valid key will do (its own tasks); reads
    may be anonymous when public reads are on, rate-limited by `address`. `count_refusal` as in
    `RateLimiter.decide_locally`: False for a caller that hands refusals to the full path.
    """
    if token is None:
        if authorization:
            return Unauthenticated("The Authorization header is not a Bearer API key.")
        if scope is not Scope.read or not settings.public_reads:
            return Unauthenticated("No API key was sent.")
        caller = Caller(
            key_id=None,
            owner=None,
            scopes=_ANONYMOUS_SCOPES,
            rate_limit_per_minute=settings.anonymous_rate_limit_per_minute,
            address=address if address is not None else "unknown",
        )
    else:
        if known is None:
            return LOOK_UP_KEY
        found, expires_at = known
        if isinstance(found, str):
            return Unauthenticated(found)
        if expires_at is not None and expires_at <= utcnow():
            return Unauthenticated("The API key has expired.")
        caller = found
    if scope is not None and not caller.has(scope):
        return InsufficientScope(scope.value)
    if not settings.rate_limit_enabled:
        return caller
    wait = limiter.decide_locally(caller, time.time(), count_refusal=count_refusal)
    if wait is None:
        return CountFirst(caller)
    return rate_limited(caller, wait) if wait else caller


def counted(caller: Caller, wait: int | None) -> Caller | RateLimited:
    """The outcome once the shared counters answered `wait` (None: under the limit)."""
    return caller if wait is None else rate_limited(caller, wait)


def rate_limited(caller: Caller, wait: int) -> RateLimited:
    return RateLimited(
        f"Rate limit of {caller.rate_limit_per_minute} requests per minute exceeded; "
        f"retry in {wait} s.",
        [ErrorDetail(["header", "authorization"], "rate_limited", "this caller's limit")],
        retry_after_s=wait,
    )
