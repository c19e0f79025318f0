"""Task resources as clients see them (modelled on Meilisearch's task resource)."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class TaskStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"


class TaskType(StrEnum):
    course_upsert = "course.upsert"
    course_bulk_upsert = "course.bulk_upsert"
    course_patch = "course.patch"
    course_delete = "course.delete"
    learner_upsert = "learner.upsert"
    learner_delete = "learner.delete"
    interaction_batch = "interaction.batch"
    model_retrain = "model.retrain"


TERMINAL = (TaskStatus.succeeded, TaskStatus.failed)


class ItemError(BaseModel):
    index: int = Field(description="position of the item in the request (0 for single writes)")
    course_id: str | None
    code: str
    reason: str


class TaskCounts(BaseModel):
    received: int
    applied: int
    failed: int


class TaskAccepted(BaseModel):
    task_id: uuid.UUID
    status: TaskStatus
    status_url: str


class TaskOut(BaseModel):
    task_id: uuid.UUID
    seq: int = Field(description="acceptance order; the version stamped on the courses written")
    type: TaskType
    status: TaskStatus
    counts: TaskCounts
    errors: list[ItemError] = Field(description="per-item failures, each with its reason")
    error: str | None = Field(description="why the whole task failed, when it did")
    attempts: int
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None
