"""Learners and their interactions. Deleting a learner deletes their interactions with them."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

INTERACTION_TYPES = ("view", "enroll", "complete", "rate", "bookmark")


class Learner(Base):
    __tablename__ = "learners"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    interests: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(35))
    # tasks.seq of the last profile write applied; 0 for a learner first seen in interactions.
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("level IN ('beginner', 'intermediate', 'advanced', 'mixed')", name="level"),
    )


class Interaction(Base):
    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    learner_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("learners.id", ondelete="CASCADE")
    )
    # No foreign key: courses are tombstoned, and reads only ever serve live ones.
    course_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    value: Mapped[int | None] = mapped_column(SmallInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Client-supplied, or derived from the task and item position: a redelivered or repeated
    # event is stored once.
    event_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"type IN {INTERACTION_TYPES}", name="type"),
        CheckConstraint(
            "(type = 'rate' AND value BETWEEN 1 AND 5) OR (type <> 'rate' AND value IS NULL)",
            name="value",
        ),
        Index("uq_interactions_learner_event", "learner_id", "event_id", unique=True),
        Index("ix_interactions_occurred_at", "occurred_at"),
        Index("ix_interactions_course_id", "course_id"),
    )
