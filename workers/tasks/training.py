"""Training the collaborative model, on its own queue and worker: on demand (a ledger task from
`POST /v1/admin/retrain`) and on beat's schedule."""

import logging
import uuid

from celery import shared_task

from shared.db import transaction
from shared.ledger.repository import TaskRepository
from shared.ledger.schemas import TaskStatus
from shared.messaging import SCHEDULED_RETRAIN, TRAIN_MODEL
from shared.recommendations.training import NothingToTrain, TrainingReport, train
from workers.retry import TransientError, is_transient
from workers.runtime import WorkerRuntime, runtime
from workers.tasks.base import LedgerTask

log = logging.getLogger(__name__)


def _train(rt: WorkerRuntime) -> TrainingReport:
    try:
        return rt.run(train(rt.sessionmaker, rt.milvus, rt.settings))
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        raise


async def _claim(rt: WorkerRuntime, task_id: uuid.UUID) -> bool:
    async with transaction(rt.sessionmaker) as session:
        return await TaskRepository(session).claim(task_id) is not None


async def _finish(rt: WorkerRuntime, task_id: uuid.UUID, report: TrainingReport) -> None:
    async with transaction(rt.sessionmaker) as session:
        await TaskRepository(session).record_outcome(
            task_id,
            applied=1,
            errors=[],
            status=TaskStatus.succeeded,
            error=None,
        )
    log.info("retrain task %s produced model version %d", task_id, report.version)


@shared_task(name=TRAIN_MODEL, base=LedgerTask, bind=True, max_retries=3)
def train_model(self: LedgerTask, task_id: str) -> int | None:
    rt = runtime()
    ledger_id = uuid.UUID(task_id)
    if not rt.run(_claim(rt, ledger_id)):
        log.info("retrain task %s is unknown or already finished", task_id)
        return None
    report = _train(rt)
    rt.run(_finish(rt, ledger_id, report))
    return report.version


@shared_task(name=SCHEDULED_RETRAIN, ignore_result=True, autoretry_for=(TransientError,),
             retry_backoff=True, max_retries=3)  # fmt: skip
def scheduled_retrain() -> int | None:
    try:
        return _train(runtime()).version
    except NothingToTrain:
        log.info("scheduled retrain skipped: no interactions yet")
        return None
