"""Task resources as clients see them (modelled on Meilisearch's task resource)."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


class TaskStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class TaskType(StrEnum):
    course_upsert = "course.upsert"
    course_bulk_upsert = "course.bulk_upsert"
    course_patch = "course.patch"
    course_delete = "course.delete"
    learner_upsert = "learner.upsert"
    learner_delete = "learner.delete"
    interaction_batch = "interaction.batch"
    model_retrain = "model.retrain"


TERMINAL = (TaskStatus.succeeded, TaskStatus.failed, TaskStatus.cancelled)


class ItemError(BaseModel):
    """One item of a task that was not applied. `id` is new; `course_id` is kept for the clients
    that read it, and only names a course (errors recorded before `id` existed have no `id`)."""

    # Read and written as `id` on the wire and in the ledger; `item_id` in code.
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    index: int = Field(description="position of the item in the request (0 for single writes)")
    item_id: str | None = Field(
        default=None,
        alias="id",
        description="the item's id: the course's for course writes, the learner's for learner "
        "writes and interactions",
    )
    course_id: str | None = Field(
        default=None,
        description="the course the item is about (course writes, interactions), else null",
    )
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
    consistency_token: str = Field(
        description="the version this write will produce, signed: pass it to a read as "
        "`?consistency=` and the read answers once the write is visible (docs/api.md)"
    )


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
    queue_position: int | None = Field(
        default=None,
        description="while queued (GET /v1/tasks/{id} only): 1 + the queued tasks of the same "
        "queue accepted before this one",
    )
    expected_start_s: float | None = Field(
        default=None,
        description="while queued: the tasks ahead over the queue's apply rate of the last "
        "minute; null when nothing was applied in that minute",
    )


class CancelFilter(BaseModel):
    """Which queued tasks to cancel. Only queued tasks are ever cancelled: a status filter
    without `queued` matches nothing. At least one field must be given, so an empty body
    cannot cancel everything by mistake."""

    model_config = ConfigDict(extra="forbid")

    statuses: list[TaskStatus] | None = Field(default=None, max_length=10)
    types: list[TaskType] | None = Field(default=None, max_length=20)
    enqueued_before: AwareDatetime | None = Field(
        default=None, description="only tasks enqueued before this time (with a time zone)"
    )

    @field_validator("enqueued_before", mode="before")
    @classmethod
    def _text_only(cls, value: object) -> object:
        # pydantic would read a number as seconds since 1970: the schema says a date-time string.
        if value is not None and not isinstance(value, str):
            raise ValueError("a date-time string with its time zone")
        return value


class CancelResult(BaseModel):
    cancelled: int
    task_ids: list[uuid.UUID] = Field(description="the tasks cancelled, oldest first")


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None
