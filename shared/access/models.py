"""API keys (stored only as hashes) and the rate-limit counters."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # Several keys may belong to one owner (rotation): tasks are visible to the owner's keys.
    owner: Mapped[str] = mapped_column(String(100), index=True)
    # The key's first characters, safe to show, so people can tell their keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    # sha256 of the whole key. Keys carry 256 random bits, so a fast hash is enough: there is
    # nothing to brute-force, unlike a password.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    # Requests per minute for this key; NULL means the default from settings.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateCounter(Base):
    """Requests per caller per minute. UNLOGGED: losing counts in a crash is harmless, and it
    spares the write-ahead log a write per request."""

    __tablename__ = "rate_counters"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    subject: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
