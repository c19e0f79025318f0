"""Webhook deliveries, each its own Celery task on its own queue (off the apply path): sent,
retried with doubling waits until `webhook_retry_for_s` after the task ended, logged."""

import logging
import uuid
from datetime import UTC, datetime

from celery import Celery, Task, shared_task
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import transaction
from shared.ledger.repository import TaskRepository
from shared.ledger.service import task_out
from shared.messaging import DELIVER_WEBHOOK
from shared.webhooks.delivery import encode, send
from shared.webhooks.guard import ForbiddenDestination
from shared.webhooks.repository import WebhookRepository
from workers.runtime import WorkerRuntime, runtime

log = logging.getLogger(__name__)


async def take_and_send(sessionmaker: async_sessionmaker[AsyncSession], app: Celery) -> int:
    """Send a delivery task for every delivery not sent yet; the count sent."""
    async with transaction(sessionmaker) as session:
        ids = await WebhookRepository(session).take_undispatched(limit=200)
        # Sent before the commit marks them: a failed send leaves them for the next call.
        for delivery_id in ids:
            app.send_task(DELIVER_WEBHOOK, args=[str(delivery_id)], task_id=str(delivery_id))
    return len(ids)


def dispatch_deliveries(app: Celery) -> int:
    """Send a delivery task for every delivery not sent yet (after a task ended, and from the
    sweeper for the ones a crash or the API's cancel left)."""
    rt = runtime()
    return rt.run(take_and_send(rt.sessionmaker, app))


async def _deliver(rt: WorkerRuntime, delivery_id: uuid.UUID) -> float | None:
    """One attempt. The seconds to wait before the next one, or None when done (delivered,
    refused or given up)."""
    settings = rt.settings
    async with transaction(rt.sessionmaker) as session:
        repo = WebhookRepository(session)
        # Locked for the attempt: a second copy of this message waits, then sees it done.
        found = await repo.delivery(delivery_id)
        if found is None or found[0].status != "pending":
            return None
        delivery, webhook = found
        body = delivery.body
        if body is None:
            task = await TaskRepository(session).get(delivery.task_id)
            task_body = (
                task_out(task).model_dump(mode="json")
                if task is not None
                else {"task_id": str(delivery.task_id)}
            )
            body = {"event": delivery.event, "delivery_id": str(delivery.id), "task": task_body}
        try:
            code, error = send(
                webhook.url,
                webhook.secret,
                delivery.event,
                str(delivery.id),
                encode(body),
                settings,
            )
            refused = False
        except ForbiddenDestination as exc:
            code, error, refused = None, exc.message, True
        except OSError as exc:  # the name does not resolve (now): retried like a dead receiver
            code, error, refused = None, f"{type(exc).__name__}: {exc}", False
        wait = min(
            settings.webhook_backoff_s * 2**delivery.attempts, settings.webhook_backoff_max_s
        )
        age = (datetime.now(UTC) - delivery.created_at).total_seconds()
        if error is None:
            status = "succeeded"
        elif refused or age + wait > settings.webhook_retry_for_s:
            status = "failed"
        else:
            status = "pending"
        await repo.record_attempt(
            delivery_id, body=body, status=status, status_code=code, error=error
        )
    if status == "pending":
        log.info("webhook delivery %s failed (%s); again in %.1fs", delivery_id, error, wait)
        return wait
    log.info("webhook delivery %s %s (%s)", delivery_id, status, error or code)
    return None


@shared_task(name=DELIVER_WEBHOOK, bind=True, max_retries=None, acks_late=True, ignore_result=True)
def deliver_webhook(self: Task, delivery_id: str) -> None:
    rt = runtime()
    wait = rt.run(_deliver(rt, uuid.UUID(delivery_id)))
    if wait is not None:
        raise self.retry(countdown=wait)
