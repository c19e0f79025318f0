"""All SQL for webhooks and their delivery log."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.webhooks.models import Webhook, WebhookDelivery


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, *, url: str, secret: str, events: list[str]) -> Webhook:
        webhook = Webhook(id=uuid.uuid4(), url=url, secret=secret, events=events)
        self.session.add(webhook)
        await self.session.flush()
        await self.session.refresh(webhook)
        return webhook

    async def all(self) -> list[Webhook]:
        return list(await self.session.scalars(select(Webhook).order_by(Webhook.created_at)))

    async def get(self, webhook_id: uuid.UUID) -> Webhook | None:
        return await self.session.get(Webhook, webhook_id)

    async def remove(self, webhook_id: uuid.UUID) -> bool:
        result = await self.session.execute(delete(Webhook).where(Webhook.id == webhook_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def enqueue(self, task_id: uuid.UUID, event: str) -> None:
        """A delivery of `event` for every endpoint that wants it, in the caller's transaction
        (the one ending the task). One statement, nothing when no endpoint is registered."""
        await self.session.execute(
            insert(WebhookDelivery).from_select(
                ["id", "webhook_id", "task_id", "event"],
                select(func.gen_random_uuid(), Webhook.id, literal(task_id), literal(event)).where(
                    Webhook.events.contains([event])
                ),
            )
        )

    async def take_undispatched(self, limit: int) -> list[uuid.UUID]:
        """Mark up to `limit` deliveries no Celery task was sent for as sent, and return them
        (the caller sends them after commit; a send lost to a crash is sent by the sweeper)."""
        chosen = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.dispatched_at.is_(None))
            .order_by(WebhookDelivery.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(chosen))
            .values(dispatched_at=func.now())
            .returning(WebhookDelivery.id)
        )
        return list(result.scalars())

    async def delivery(self, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, Webhook] | None:
        row = (
            await self.session.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.id == delivery_id)
                .with_for_update(of=WebhookDelivery)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def record_attempt(
        self,
        delivery_id: uuid.UUID,
        *,
        body: dict[str, Any],
        status: str,
        status_code: int | None,
        error: str | None,
    ) -> None:
        values: dict[str, Any] = {
            "body": body,
            "status": status,
            "attempts": WebhookDelivery.attempts + 1,
            "last_status_code": status_code,
            "last_error": error,
            "last_attempt_at": func.clock_timestamp(),
        }
        if status == "succeeded":
            values["delivered_at"] = func.clock_timestamp()
        await self.session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
        )

    async def deliveries(
        self, webhook_id: uuid.UUID, *, before: datetime | None, limit: int
    ) -> list[WebhookDelivery]:
        """Newest first."""
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(WebhookDelivery.created_at < before)
        return list(await self.session.scalars(query))
