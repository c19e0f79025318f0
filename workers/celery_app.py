"""The Celery app of the workers: shared configuration plus task bodies and the beat schedule.

celery -A workers.celery_app worker -Q coursewise.courses,coursewise.maintenance -c 1
celery -A workers.celery_app worker -Q coursewise.training -c 1   (training worker)
celery -A workers.celery_app beat
python -m workers.sweeper                                     (the sweeper, a loop of its own)
"""

import os
import sys
import tempfile
from typing import Any

from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

from shared.ledger.kinds import worker_modules
from shared.logging import configure_logging
from shared.messaging import (
    RECONCILE_INDEX,
    SCHEDULED_RETRAIN,
    build_celery,
)
from shared.settings import get_settings

configure_logging()
settings = get_settings()
serving_worker = "worker" in sys.argv[1:]  # not beat, Flower or `inspect`
if (
    serving_worker
    and settings.worker_metrics_port is not None
    and not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
):
    # Children write their metrics to files the main process sums; set before any metric exists.
    # Launchers should give an empty directory per worker (see docs/operations.md).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="coursewise-worker-metrics-")
celery_app = build_celery(settings)
celery_app.conf.update(
    # A child loads the model in worker_process_init (seconds, more under load); with Celery's
    # 4 s default it is killed before it reports up, again and again, after every pool restart.
    worker_proc_alive_timeout=120,
    # The modules of the kinds' Celery tasks (one table: shared/ledger/kinds.py), and of beat's
    # periodic ones (the scheduled retrain is beside train_model).
    include=[*worker_modules(), "workers.tasks.maintenance", "workers.tasks.webhooks"],
    # Bounded publishes and a heartbeat per tick (workers/beat.py); a tick at least this often,
    # so the heartbeat's bound can be short.
    beat_scheduler="workers.beat:BoundedScheduler",
    beat_max_loop_interval=min(30.0, settings.liveness_interval_s * 3),
    beat_schedule={
        "reconcile-index": {
            "task": RECONCILE_INDEX,
            "schedule": settings.reconcile_interval_s,
            "options": {"expires": settings.reconcile_interval_s},
        },
        "retrain-model": {
            "task": SCHEDULED_RETRAIN,
            "schedule": settings.retrain_interval_s,
            "options": {"expires": settings.retrain_interval_s},
        },
    },
)
app = celery_app
if serving_worker:
    from workers.liveness import LivenessStep

    celery_app.steps["consumer"].add(LivenessStep)


@worker_process_init.connect
def _start_child(**_: Any) -> None:
    from workers.runtime import init_runtime

    init_runtime()


@worker_process_shutdown.connect
def _stop_child(**_: Any) -> None:
    from workers.observability import child_exited
    from workers.runtime import close_runtime

    close_runtime()
    child_exited()


@worker_init.connect
def _start_worker(**_: Any) -> None:
    from workers.observability import start_metrics_server

    start_metrics_server(settings)


@task_prerun.connect
def _task_started(task_id: str, task: Any, **_: Any) -> None:
    from workers.observability import task_started

    task_started(task_id, task)


@task_postrun.connect
def _task_finished(
    task_id: str, task: Any, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    from workers.observability import task_finished

    task_finished(task_id, task, retval, state)
