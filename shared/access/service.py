"""Creating, checking and revoking API keys; the sliding-window rate limit."""

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shared.access.keys import Scope, display_prefix, generate_key, hash_key
from shared.access.models import ApiKey
from shared.access.repository import ApiKeyRepository, RateCounterRepository
from shared.errors import ApiKeyNotFound, Unauthenticated

RATE_WINDOW_S = 60


@dataclass(frozen=True)
class Caller:
    """Who is calling: a key's owner, or an anonymous reader (public reads) by address."""

    key_id: uuid.UUID | None
    owner: str | None
    scopes: frozenset[str]
    rate_limit_per_minute: int
    address: str | None = None

    def has(self, scope: Scope) -> bool:
        return scope.value in self.scopes or Scope.admin.value in self.scopes

    @property
    def is_admin(self) -> bool:
        return Scope.admin.value in self.scopes

    @property
    def rate_subject(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"ip:{self.address}"


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    owner: str,
    scopes: list[Scope],
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """The stored key and its secret, which exists only in this return value."""
    secret = generate_key()
    key = await ApiKeyRepository(session).create(
        name=name,
        owner=owner,
        prefix=display_prefix(secret),
        key_hash=hash_key(secret),
        scopes=sorted({scope.value for scope in scopes}),
        expires_at=expires_at,
        rate_limit_per_minute=rate_limit_per_minute,
    )
    return key, secret


async def revoke_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    key = await ApiKeyRepository(session).revoke(key_id)
    if key is None:
        raise ApiKeyNotFound(str(key_id))
    return key


def check_usable(key: ApiKey | None, now: datetime) -> ApiKey:
    if key is None:
        raise Unauthenticated("The API key is not valid.")
    if key.revoked_at is not None:
        raise Unauthenticated("The API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthenticated("The API key has expired.")
    return key


async def find_key(session: AsyncSession, secret: str) -> ApiKey | None:
    return await ApiKeyRepository(session).by_hash(hash_key(secret))


def caller_for(key: ApiKey, default_rate: int) -> Caller:
    return Caller(
        key_id=key.id,
        owner=key.owner,
        scopes=frozenset(key.scopes),
        rate_limit_per_minute=key.rate_limit_per_minute or default_rate,
    )


def retry_after(current: int, previous: int, elapsed: float, limit: int) -> int | None:
    """Sliding-window estimate of the last minute's requests; None when under `limit`, else
    the seconds until it drops back under.

    The previous window's hits count in proportion to how much of it still overlaps the last
    60 s, which smooths the burst a fixed window allows at its edges.
    """
    width = RATE_WINDOW_S
    if previous * (1 - elapsed / width) + current <= limit:
        return None
    room = limit - 1 - current  # what the previous window may still weigh for one more request
    if room < 0 or previous == 0:
        # Not before this window ends; then this window weighs `current`, fading linearly.
        fade = width * (1 - max(limit - 1, 0) / current) if current else 0.0
        return max(1, math.ceil(width - elapsed + fade))
    # Solve previous * (1 - (elapsed + t) / W) + current + 1 <= limit for t.
    return max(1, math.ceil(width * (1 - room / previous) - elapsed))


async def count_request(session: AsyncSession, caller: Caller, now: float) -> int | None:
    """Count one request of this caller; None if allowed, else seconds to wait."""
    window = int(now // RATE_WINDOW_S) * RATE_WINDOW_S
    current, previous = await RateCounterRepository(session).hit(
        caller.rate_subject, window, RATE_WINDOW_S
    )
    return retry_after(current, previous, now - window, caller.rate_limit_per_minute)


def utcnow() -> datetime:
    return datetime.now(UTC)
