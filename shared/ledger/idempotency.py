"""Idempotency keys: the same key with the same request returns the original task; the same key
with a different request is refused. Keys are scoped to the caller and expire."""

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, String, delete, func, select
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    # Until callers authenticate, every caller shares one scope ("public").
    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


def request_fingerprint(method: str, path: str, items: list[dict[str, Any]]) -> str:
    """Identifies a request by what it asks for (after validation and normalisation)."""
    canonical = json.dumps([method, path, items], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, scope: str, key: str) -> IdempotencyKey | None:
        return await self.session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.scope == scope,
                IdempotencyKey.key == key,
                IdempotencyKey.expires_at > func.now(),
            )
        )

    async def claim(
        self, scope: str, key: str, request_hash: str, task_id: uuid.UUID, ttl_s: int
    ) -> bool:
        """Record the key for this task; False if a live record for it already exists."""
        await self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.scope == scope,
                IdempotencyKey.key == key,
                IdempotencyKey.expires_at <= func.now(),
            )
        )
        inserted = await self.session.execute(
            insert(IdempotencyKey)
            .values(
                scope=scope,
                key=key,
                request_hash=request_hash,
                task_id=task_id,
                expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, ttl_s),
            )
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.key)
        )
        return inserted.scalar_one_or_none() is not None

    async def prune(self) -> int:
        result = await self.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= func.now())
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
