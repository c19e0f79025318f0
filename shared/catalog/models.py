"""The courses table. PostgreSQL is the source of truth; Milvus holds a derived index of it."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

INDEX_STATES = ("pending", "indexed", "failed")
# What title suggestions match on (shared/catalog/suggest.py): lower case, each run of
# non-alphanumerics one space, trimmed.
NORMALISED_TITLE = "btrim(regexp_replace(lower(title), '[^[:alnum:]]+', ' ', 'g'))"


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2048))
    language: Mapped[str | None] = mapped_column(String(35))
    level: Mapped[str | None] = mapped_column(String(16))
    duration_hours: Mapped[float | None] = mapped_column(Float)
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(100)), server_default=text("'{}'"))
    price: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(3))
    rating: Mapped[float | None] = mapped_column(Float)
    # `metadata` is reserved on declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The sequence number of the accepted write this row reflects (tasks.seq): a row is only
    # ever overwritten by a write with a higher version, whatever order messages arrive in.
    version: Mapped[int] = mapped_column(BigInteger)
    # A deleted course stays as a tombstone, so a late, older write cannot bring it back.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    content_hash: Mapped[str] = mapped_column(String(64))
    index_state: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    indexed_version: Mapped[int | None] = mapped_column(BigInteger)
    index_error: Mapped[str | None] = mapped_column(Text)
    # Stored, not an index expression: suggestions recheck and rank candidate rows on it.
    title_normalised: Mapped[str] = mapped_column(Text, Computed(NORMALISED_TITLE, persisted=True))

    __table_args__ = (
        CheckConstraint(f"index_state IN {INDEX_STATES}", name="index_state"),
        CheckConstraint("level IN ('beginner', 'intermediate', 'advanced', 'mixed')", name="level"),
        Index("ix_courses_skills", "skills", postgresql_using="gin"),
        Index("ix_courses_provider", "provider"),
        Index("ix_courses_level_language", "level", "language"),
        Index(
            "ix_courses_index_backlog",
            "id",
            postgresql_where=text("index_state <> 'indexed'"),
        ),
        Index(
            "ix_courses_title_suggest_prefix",
            "title_normalised",
            postgresql_ops={"title_normalised": "text_pattern_ops"},
        ),
        Index(
            "ix_courses_title_suggest_trgm",
            "title_normalised",
            postgresql_using="gin",
            postgresql_ops={"title_normalised": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        ),
    )
