"""GET /metrics: Prometheus exposition of the API processes (summed over them), plus gauges read
from PostgreSQL and RabbitMQ at scrape time. Each source has a short timeout and a failing one
only drops its gauges (and sets coursewise_state_source_up to 0): a scrape never hangs."""

import logging

import anyio
from celery import Celery
from fastapi import APIRouter, Request, Response

from api.deps import CeleryDep, SettingsDep
from shared.catalog.repository import CourseRepository
from shared.ledger.repository import TaskRepository
from shared.ledger.service import backlogs
from shared.messaging import queue_depths
from shared.metrics import CONTENT_TYPE_LATEST, StateSnapshot, render
from shared.settings import Settings

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


def _queue_depths(celery: Celery, settings: Settings) -> dict[str, tuple[int, int]]:
    with celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=settings.metrics_source_timeout_s)
        return queue_depths(connection, (settings.write_queue, settings.maintenance_queue))


async def collect_state(request: Request, celery: Celery, settings: Settings) -> StateSnapshot:
    state = StateSnapshot()
    timeout = settings.metrics_source_timeout_s
    try:
        with anyio.fail_after(timeout):
            async with request.app.state.sessionmaker() as session:
                tasks = TaskRepository(session)
                (
                    state.tasks_by_status,
                    state.oldest_queued_age_s,
                    state.queued_too_long,
                ) = await tasks.unfinished_stats(settings.queued_alert_after_s)
                state.backlog = {
                    queue: (b.queued, b.apply_per_s)
                    for queue, b in (await backlogs(tasks, settings)).items()
                }
                state.index_lag = await CourseRepository(session).index_lag()
        state.sources_up["postgres"] = True
    except Exception as exc:
        log.warning("metrics: PostgreSQL unreadable: %r", exc)
        state.tasks_by_status = state.index_lag = state.backlog = None
        state.sources_up["postgres"] = False
    try:
        with anyio.fail_after(timeout * 2):
            depths = await anyio.to_thread.run_sync(
                _queue_depths, celery, settings, abandon_on_cancel=True
            )
        state.queue_messages = {queue: messages for queue, (messages, _) in depths.items()}
        state.queue_consumers = {queue: consumers for queue, (_, consumers) in depths.items()}
        state.sources_up["rabbitmq"] = True
    except Exception as exc:
        log.warning("metrics: RabbitMQ queues unreadable: %r", exc)
        state.sources_up["rabbitmq"] = False
    return state


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, celery: CeleryDep, settings: SettingsDep) -> Response:
    state = await collect_state(request, celery, settings)
    return Response(render(state), media_type=CONTENT_TYPE_LATEST)
