"""The task ledger: one row per accepted write, committed before the client hears 202."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Index, Integer, String, Text
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.ledger.schemas import TaskType

TASK_STATUSES = ("queued", "processing", "succeeded", "failed", "cancelled")
# A new kind needs a migration widening this constraint (the table of kinds: kinds.py).
TASK_TYPES = tuple(task_type.value for task_type in TaskType)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Grows with every accepted write: the version stamped on the courses this task writes,
    # and the order tasks are listed in.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    # The API key owner that made the write: only they (and admins) can see the task.
    owner: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), server_default=sql("'queued'"))
    # Deferred: a bulk payload can be megabytes, and only the worker ever reads it.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, deferred=True)
    received: Mapped[int] = mapped_column(Integer)
    applied: Mapped[int] = mapped_column(Integer, server_default=sql("0"))
    failed: Mapped[int] = mapped_column(Integer, server_default=sql("0"))
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=sql("'[]'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=sql("0"))
    publish_count: Mapped[int] = mapped_column(Integer, server_default=sql("0"))
    enqueued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql("now()")
    )
    last_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN {TASK_STATUSES}", name="status"),
        CheckConstraint(f"type IN {TASK_TYPES}", name="type"),
        Index("ix_tasks_status_seq", "status", "seq"),
        Index("ix_tasks_type_seq", "type", "seq"),
        Index("ix_tasks_owner_seq", "owner", "seq"),
        # Backlog checks on every write count only unfinished tasks.
        Index(
            "ix_tasks_pending_owner",
            "owner",
            postgresql_where=sql("status IN ('queued', 'processing')"),
        ),
        # Retention pruning finds old finished tasks without a scan.
        Index(
            "ix_tasks_finished_at",
            "finished_at",
            postgresql_where=sql("status IN ('succeeded', 'failed', 'cancelled')"),
        ),
    )
