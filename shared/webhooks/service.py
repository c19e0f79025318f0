"""Webhook use cases of the API."""

import uuid
from datetime import datetime

from shared.errors import ErrorDetail, NotFound
from shared.settings import Settings
from shared.webhooks.guard import check_url
from shared.webhooks.models import Webhook, WebhookDelivery
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.schemas import DeliveryOut, WebhookEvent, WebhookIn, WebhookOut


class WebhookNotFound(NotFound):
    code = "webhook_not_found"

    def __init__(self, webhook_id: str) -> None:
        super().__init__(
            f"Webhook {webhook_id!r} does not exist.",
            [ErrorDetail(["path", "webhook_id"], self.code, "no webhook with this id")],
        )


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        url=webhook.url,
        events=[WebhookEvent(event) for event in webhook.events],
        created_at=webhook.created_at,
    )


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        task_id=delivery.task_id,
        event=WebhookEvent(delivery.event),
        status=delivery.status,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        last_attempt_at=delivery.last_attempt_at,
        delivered_at=delivery.delivered_at,
    )


async def register(repo: WebhookRepository, body: WebhookIn, settings: Settings) -> WebhookOut:
    check_url(body.url, settings)
    events = [event.value for event in dict.fromkeys(body.events)]
    return webhook_out(await repo.create(url=body.url, secret=body.secret, events=events))


async def deliveries(
    repo: WebhookRepository, webhook_id: uuid.UUID, before: datetime | None, limit: int
) -> list[WebhookDelivery]:
    if await repo.get(webhook_id) is None:
        raise WebhookNotFound(str(webhook_id))
    return await repo.deliveries(webhook_id, before=before, limit=limit)
