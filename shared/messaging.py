"""The Celery app configuration shared by the API (which only publishes, by task name) and the
workers (which register the task bodies). The API never imports worker code. The Celery tasks
that apply ledger tasks, and their queues, come from the table of kinds (shared/ledger/kinds.py);
the periodic ones are named here."""

import uuid

from celery import Celery
from kombu import Exchange, Producer, Queue

from shared.ledger.kinds import KINDS, kind_of
from shared.ledger.schemas import TaskType
from shared.settings import Settings

REQUEUE_STALE_TASKS = "coursewise.maintenance.requeue_stale_tasks"
RECONCILE_INDEX = "coursewise.maintenance.reconcile_index"
SCHEDULED_RETRAIN = "coursewise.training.scheduled_retrain"


TASK_EXCHANGE = "coursewise.tasks"
DEAD_LETTER_EXCHANGE = "coursewise.dead-letter"
# One delivery of one webhook event (workers/tasks/webhooks.py); on the wire: never rename.
DELIVER_WEBHOOK = "coursewise.webhooks.deliver"
DEAD_LETTER_QUEUE = "coursewise.dead-letter"


def task_queues(settings: Settings) -> list[Queue]:
    """Quorum queues: replicated, and with a delivery limit, after which a message that keeps
    killing its consumer is dead-lettered instead of redelivered forever. The exchange is a
    topic exchange because Celery's native delayed delivery (retry countdowns on quorum queues)
    binds through it."""
    exchange = Exchange(TASK_EXCHANGE, type="topic", durable=True)
    arguments = {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
    }
    return [
        Queue(name, exchange, routing_key=name, durable=True, queue_arguments=arguments)
        for name in (
            settings.write_queue,
            settings.maintenance_queue,
            settings.training_queue,
            settings.webhook_queue,
        )
    ]


def dead_letter_queue() -> Queue:
    exchange = Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)
    return Queue(
        DEAD_LETTER_QUEUE, exchange, durable=True, queue_arguments={"x-queue-type": "quorum"}
    )


def declare_topology(app: Celery) -> None:
    """Declare the exchanges and queues, the dead-letter queue included (nobody consumes it, so
    no worker would declare it)."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in [*app.conf.task_queues, dead_letter_queue()]:
            queue.bind(channel).declare()


def _route(queue: str) -> dict[str, str]:
    return {"queue": queue, "routing_key": queue}


def task_routes(settings: Settings) -> dict[str, dict[str, str]]:
    """Every kind's Celery task to its queue (learner writes share the write queue with courses;
    training has its own queue and worker, so a retrain never delays a write), and the periodic
    tasks to theirs."""
    routes = {kind.task: _route(kind.queue(settings)) for kind in KINDS.values()}
    routes[REQUEUE_STALE_TASKS] = routes[RECONCILE_INDEX] = _route(settings.maintenance_queue)
    routes[SCHEDULED_RETRAIN] = _route(settings.training_queue)
    routes[DELIVER_WEBHOOK] = _route(settings.webhook_queue)
    return routes


def build_celery(settings: Settings) -> Celery:
    app = Celery("coursewise", broker=settings.broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # outcomes live in the task ledger (PostgreSQL)
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_delivery_mode="persistent",
        task_queues=task_queues(settings),
        task_default_queue=settings.write_queue,
        task_default_exchange=TASK_EXCHANGE,
        task_default_exchange_type="topic",
        # Below RabbitMQ's consumer timeout (30 min by default), so a task is stopped by Celery
        # before the broker closes the channel under it.
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_soft_time_limit_s + 60,
        task_routes=task_routes(settings),
        # Wait for RabbitMQ to confirm each publish: a 202 is only as good as the message.
        broker_transport_options={"confirm_publish": True},
        broker_connection_timeout=settings.publish_timeout_s,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        # No "task-sent" event per publish: it doubled the confirmed publishes of every accepted
        # write (measured). Flower shows a task from when a worker receives it; the ledger
        # (GET /v1/tasks, coursewise tasks list) has every queued one.
        task_send_sent_event=False,
        timezone="UTC",
    )
    return app


# Message header carrying the id of the HTTP request that made the write (for the worker's logs).
REQUEST_ID_HEADER = "coursewise_request_id"


def publish_write(
    app: Celery,
    task_id: uuid.UUID,
    task_type: TaskType | str,
    request_id: str | None = None,
    producer: Producer | None = None,
) -> None:
    """Publish the id of a ledger task, of any kind, to the Celery task that applies that kind
    (blocking; call from a thread). Raises if the broker did not confirm (unless `producer` is a
    producer whose channel the caller waits confirms on)."""
    app.send_task(
        kind_of(task_type).task,
        args=[str(task_id)],
        task_id=str(task_id),
        retry=False,
        producer=producer,
        headers={REQUEST_ID_HEADER: request_id} if request_id else None,
    )
