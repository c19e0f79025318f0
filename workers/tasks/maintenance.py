"""Periodic jobs run from beat."""

import logging
import time
from datetime import UTC, datetime, timedelta

from celery import current_app, shared_task
from sqlalchemy.ext.asyncio import AsyncSession

from shared.access.repository import RateCounterRepository
from shared.access.service import RATE_WINDOW_S
from shared.catalog.reconcile import reconcile
from shared.db import transaction
from shared.ledger.idempotency import IdempotencyRepository
from shared.ledger.repository import TaskRepository
from shared.messaging import RECONCILE_INDEX, REQUEUE_STALE_TASKS, publish_write
from shared.settings import Settings
from workers.retry import TransientError, is_transient
from workers.runtime import WorkerRuntime, runtime
from workers.tasks.webhooks import dispatch_deliveries

log = logging.getLogger(__name__)


async def requeue_stale(rt: WorkerRuntime, *, limit: int = 500) -> int:
    """Publish again every task whose message may be lost; consumers make duplicates harmless."""
    async with transaction(rt.sessionmaker) as session:
        repo = TaskRepository(session)
        due = await repo.due_for_publish(
            now=datetime.now(UTC),
            requeue_after=timedelta(seconds=rt.settings.requeue_after_s),
            stuck_after=timedelta(seconds=rt.settings.stuck_processing_after_s),
            limit=limit,
        )
        for task_id, publishes, task_type in due:
            if publishes >= rt.settings.max_publishes:
                # Its message was dead-lettered, or every worker that takes it dies: stop here.
                await repo.fail(
                    task_id,
                    f"gave up after {publishes} deliveries: the message was dead-lettered or "
                    "its worker was lost every time (see the dead-letter queue)",
                )
                continue
            publish_write(current_app, task_id, task_type)
            await repo.mark_published(task_id)
        pruned = await prune(rt.settings, session)
    if any(pruned.values()):
        log.info("pruned %s", pruned)
    if due:
        log.warning("re-published %d task(s) whose message may have been lost", len(due))
    return len(due)


async def prune(settings: Settings, session: AsyncSession) -> dict[str, int]:
    """Retention: nothing the API records grows without end. Batched, so one sweep stays short
    even after a long outage; the next sweeps finish the rest."""
    now = datetime.now(UTC)
    retention = timedelta(days=settings.task_retention_days)
    return {
        "idempotency_keys": await IdempotencyRepository(session).prune(),
        "tasks": await TaskRepository(session).prune_finished(
            older_than=now - retention, limit=1000
        ),
        "rate_counters": await RateCounterRepository(session).prune(
            before_window=int(now.timestamp()) - 2 * RATE_WINDOW_S
        ),
    }


# Single writes seal into segments at most this often (a flush per sweep would make many
# tiny segments); bulk indexing flushes as it goes.
FLUSH_EVERY_S = 300.0
_last_flush = 0.0


@shared_task(name=REQUEUE_STALE_TASKS, ignore_result=True)
def requeue_stale_tasks() -> int:
    global _last_flush
    rt = runtime()
    requeued = rt.run(requeue_stale(rt))
    # Webhook deliveries no task was sent for (an API cancel, or a crash after a commit).
    try:
        dispatch_deliveries(current_app)
    except Exception:
        log.warning("could not dispatch webhook deliveries", exc_info=True)
    if time.monotonic() - _last_flush >= FLUSH_EVERY_S:
        try:
            rt.indexer.flush()
            _last_flush = time.monotonic()
        except Exception as exc:  # the index serves unsealed data meanwhile; next sweep retries
            log.warning("flushing the course collection failed: %r", exc)
    return requeued


@shared_task(
    name=RECONCILE_INDEX,
    ignore_result=True,
    autoretry_for=(TransientError,),
    retry_backoff=True,
    max_retries=3,
)
def reconcile_index() -> dict[str, int]:
    rt = runtime()
    try:
        report = rt.run(
            reconcile(rt.sessionmaker, rt.milvus, rt.settings.milvus_collection, rt.indexer)
        )
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        raise
    log.info("reconciliation: %s", report.as_dict())
    return report.as_dict()
