"""Trained collaborative models. Item factors live in a Milvus collection per version; the
row keeps what a read needs to fold a learner in (YᵀY) and which version is served. Also the
served lists (`recommendation_id`) and the change count read-side memos are keyed by."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, deferred, mapped_column

from shared.db import Base

MODEL_STATES = ("training", "active", "retired", "failed")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), server_default=text("'als'"))
    state: Mapped[str] = mapped_column(String(16), server_default=text("'training'"))
    collection: Mapped[str | None] = mapped_column(String(255))
    factors: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    learners: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    items: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    interactions: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    train_seconds: Mapped[float | None] = mapped_column(Float)
    # YᵀY of the item factors, float64, row-major (factors x factors).
    gram: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"state IN {MODEL_STATES}", name="state"),
        Index(
            "uq_model_versions_active",
            "kind",
            unique=True,
            postgresql_where=text("state = 'active'"),
        ),
    )


class RecommendationList(Base):
    """A served list (recommendations or similar courses), so interactions can cite it."""

    __tablename__ = "recommendation_lists"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    surface: Mapped[str] = mapped_column(String(32))
    # Whom it was made for; NULL for similar courses (anyone may cite those).
    learner_id: Mapped[str | None] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[int | None] = mapped_column(BigInteger)
    # course id -> reason code, for each course of the list.
    reasons: Mapped[dict[str, str]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_recommendation_lists_learner_id", "learner_id"),
        Index("ix_recommendation_lists_created_at", "created_at"),
    )


class DataChanges(Base):
    """One row: raised by every statement that changes courses or interactions, in its own
    transaction (triggers of migration 0013). The same number means the same rows, so what a
    read computed from them may be kept under it."""

    __tablename__ = "data_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    changes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))

    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)
