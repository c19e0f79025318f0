"""Webhooks as clients see them."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class WebhookEvent(StrEnum):
    task_succeeded = "task.succeeded"
    # Succeeded with some items failed (each with its reason in the task's `errors`).
    task_partially_failed = "task.partially_failed"
    task_failed = "task.failed"
    task_cancelled = "task.cancelled"


def event_for(status: str, failed: int) -> WebhookEvent:
    if status == "cancelled":
        return WebhookEvent.task_cancelled
    if status == "failed":
        return WebhookEvent.task_failed
    return WebhookEvent.task_partially_failed if failed else WebhookEvent.task_succeeded


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="http(s) only; checked against the destination allow list (docs/api.md)",
    )
    secret: str = Field(
        min_length=16,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="signs every delivery (HMAC-SHA256); never shown again",
    )
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(WebhookEvent), min_length=1, max_length=10
    )


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[WebhookEvent]
    created_at: datetime


class WebhookList(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: uuid.UUID
    task_id: uuid.UUID
    event: WebhookEvent
    status: str = Field(description="pending, succeeded or failed (gave up)")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
