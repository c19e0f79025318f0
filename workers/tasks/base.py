"""The task wrapper every ledger-backed task uses: transient failures retry with backoff; when a
task gives up (or fails for a permanent reason) the ledger records it failed, with the reason."""

import logging
import uuid
from typing import Any

from celery import Task

from shared.catalog.repository import CourseRepository
from shared.db import transaction
from shared.ledger.kinds import CourseKind, kind_of
from shared.ledger.repository import TaskRepository
from workers.retry import TransientError
from workers.runtime import runtime
from workers.tasks.webhooks import dispatch_deliveries

# What a ledger task returns when its task had already ended: this run ended nothing.
SKIPPED = "skipped"

log = logging.getLogger(__name__)


class LedgerTask(Task):
    autoretry_for = (TransientError,)
    retry_backoff = 2
    retry_backoff_max = 120
    retry_jitter = True
    acks_late = True
    reject_on_worker_lost = True

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        # The webhook deliveries the run's ended tasks left in the outbox (none: one query).
        # A message whose task had already ended (applied with a batch, or a redelivery) ended
        # nothing: under a stream of small writes that is most messages, so no query for them.
        if retval == SKIPPED:
            return
        try:
            dispatch_deliveries(self.app)
        except Exception:  # the sweeper sends them; a delivery never fails a write
            log.warning("could not dispatch webhook deliveries after %s", task_id, exc_info=True)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        cause = exc.__cause__ or exc
        reason = f"{type(cause).__name__}: {cause}"[:2000]
        log.error("task %s failed for good: %s", task_id, reason)
        try:
            runtime().run(_record_failure(uuid.UUID(str(args[0])), reason))
        except Exception:  # the sweeper will bring the task back; nothing is lost
            log.exception("could not record the failure of task %s", task_id)


async def _record_failure(task_id: uuid.UUID, reason: str) -> None:
    async with transaction(runtime().sessionmaker) as session:
        task = await TaskRepository(session).get(task_id, with_payload=True)
        if task is None:
            return
        await TaskRepository(session).fail(task_id, reason)
        if isinstance(kind_of(task.type), CourseKind):
            ids = [item["id"] for item in task.payload["items"]]
            await CourseRepository(session).mark_index_failed(ids, version=task.seq, error=reason)
