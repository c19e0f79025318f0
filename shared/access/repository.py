"""All SQL for API keys and rate counters."""

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.access.models import ApiKey, RateCounter


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        name: str,
        owner: str,
        prefix: str,
        key_hash: str,
        scopes: list[str],
        expires_at: datetime | None,
        rate_limit_per_minute: int | None,
    ) -> ApiKey:
        key = ApiKey(
            id=uuid.uuid4(),
            name=name,
            owner=owner,
            prefix=prefix,
            key_hash=key_hash,
            scopes=scopes,
            expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute,
        )
        self.session.add(key)
        await self.session.flush()
        await self.session.refresh(key)
        return key

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    async def get(self, key_id: uuid.UUID) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def all(self, *, include_revoked: bool) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        return list((await self.session.scalars(query)).all())

    async def revoke(self, key_id: uuid.UUID) -> ApiKey | None:
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
            .returning(ApiKey)
        )
        return result.scalar_one_or_none()


# One round trip: count requests in the current window, and read the previous window.
_HIT = text(
    """
    WITH current AS (
        INSERT INTO rate_counters (subject, window_start, hits)
        VALUES (:subject, :window, :hits)
        ON CONFLICT (subject, window_start) DO UPDATE SET hits = rate_counters.hits + :hits
        RETURNING hits
    )
    SELECT (SELECT hits FROM current),
           coalesce((SELECT hits FROM rate_counters
                     WHERE subject = :subject AND window_start = :window - :width), 0)
    """
)


class RateCounterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def hit(self, subject: str, window: int, width: int, hits: int = 1) -> tuple[int, int]:
        """Add `hits` to this window; (hits in this window including them, in the previous)."""
        params = {"subject": subject, "window": window, "width": width, "hits": hits}
        row = (await self.session.execute(_HIT, params)).one()
        return int(row[0]), int(row[1])

    async def prune(self, before_window: int) -> int:
        result = await self.session.execute(
            delete(RateCounter).where(RateCounter.window_start < before_window)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
