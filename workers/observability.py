"""Worker observability: task metrics from Celery's signals, the request id of the write a task
applies in every log line while it runs, and the metrics endpoint of the worker (served by the
main process, summing its children)."""

import logging
import time
from contextvars import Token
from typing import Any

from shared.logging import request_id_var, valid_request_id
from shared.messaging import REQUEST_ID_HEADER
from shared.metrics import mark_process_dead, observe_task, process_registry
from shared.settings import Settings

log = logging.getLogger(__name__)

# The ledger type (course.upsert, ...) of the task being run; other tasks use their Celery name.
# A plain global, not a context variable: it is set inside the task's coroutine (a copied
# context) and read by the postrun signal; a child runs one task at a time.
_task_type: list[str | None] = [None]
_running: dict[str, tuple[float, Token[str | None]]] = {}
_LEDGER_OUTCOMES = {"succeeded", "failed", "skipped"}


def note_ledger_task(type: str, request_id: str | None) -> None:
    """Called once the task row is read: its type labels the metrics, and its recorded request id
    stands in when the message had none (a re-publish by the sweeper)."""
    _task_type[0] = type
    if request_id_var.get() is None and valid_request_id(request_id):
        request_id_var.set(request_id)


def task_started(task_id: str, task: Any) -> None:
    request_id = valid_request_id(task.request.get(REQUEST_ID_HEADER))
    _task_type[0] = None
    _running[task_id] = (time.perf_counter(), request_id_var.set(request_id))


def task_finished(task_id: str, task: Any, retval: Any, state: str | None) -> None:
    started, token = _running.pop(task_id, (None, None))
    if state == "SUCCESS":
        outcome = retval if isinstance(retval, str) and retval in _LEDGER_OUTCOMES else "succeeded"
    else:
        outcome = {"RETRY": "retried", "FAILURE": "failed"}.get(state or "", "unknown")
    if started is not None:
        observe_task(_task_type[0] or task.name, outcome, time.perf_counter() - started)
    if token is not None:
        request_id_var.reset(token)
    else:
        request_id_var.set(None)
    _task_type[0] = None


def start_metrics_server(settings: Settings) -> None:
    if settings.worker_metrics_port is None:
        return
    from prometheus_client import start_http_server

    start_http_server(
        settings.worker_metrics_port,
        addr=settings.worker_metrics_host,
        registry=process_registry(),
    )
    log.info(
        "worker metrics at http://%s:%d/metrics",
        settings.worker_metrics_host,
        settings.worker_metrics_port,
    )


def child_exited() -> None:
    mark_process_dead()
