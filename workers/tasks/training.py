"""Training the collaborative model, on its own queue and worker: on demand (a ledger task from
`POST /v1/admin/retrain`) and on beat's schedule."""

import logging
import uuid
from typing import Any

from celery import shared_task

from shared.db import transaction
from shared.ledger.kinds import TRAIN_MODEL, TrainingKind, kind_of
from shared.ledger.repository import TaskRepository
from shared.ledger.schemas import TaskStatus
from shared.messaging import SCHEDULED_RETRAIN
from shared.recommendations.training import NothingToTrain, TrainingReport, train
from workers.retry import TransientError, is_transient
from workers.runtime import WorkerRuntime, runtime
from workers.tasks.base import LedgerTask

log = logging.getLogger(__name__)


def _train(rt: WorkerRuntime, trainer: TrainingKind[Any] | None = None) -> TrainingReport:
    """Train with the applier of a retrain kind, or (beat's schedule) the default one."""
    run = train if trainer is None else trainer.apply
    try:
        return rt.run(run(rt.sessionmaker, rt.milvus, rt.settings))
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        raise


async def _claim(rt: WorkerRuntime, task_id: uuid.UUID) -> TrainingKind[Any] | None:
    """The kind of the task, now processing; None when it is unknown or already finished."""
    async with transaction(rt.sessionmaker) as session:
        task = await TaskRepository(session).claim(task_id)
    if task is None:
        return None
    kind = kind_of(task.type)
    if not isinstance(kind, TrainingKind):  # a routing mistake: no retry will make it one
        raise ValueError(f"task {task_id} is a {task.type} task, not a retrain")
    return kind


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
    kind = rt.run(_claim(rt, ledger_id))
    if kind is None:
        log.info("retrain task %s is unknown or already finished", task_id)
        return None
    report = _train(rt, kind)
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
