"""The Celery app configuration shared by the API (which only publishes, by task name) and the
workers (which register the task bodies). The API never imports worker code."""

import uuid

from celery import Celery
from kombu import Exchange, Queue

from shared.settings import Settings

APPLY_COURSE_WRITES = "coursewise.courses.apply_writes"
REQUEUE_STALE_TASKS = "coursewise.maintenance.requeue_stale_tasks"


def build_celery(settings: Settings) -> Celery:
    app = Celery("coursewise", broker=settings.broker_url)
    exchange = Exchange("coursewise", type="direct", durable=True)
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
        task_queues=[
            Queue(settings.course_queue, exchange, routing_key=settings.course_queue, durable=True),
            Queue(
                settings.maintenance_queue,
                exchange,
                routing_key=settings.maintenance_queue,
                durable=True,
            ),
        ],
        task_default_queue=settings.course_queue,
        task_default_exchange="coursewise",
        task_routes={
            APPLY_COURSE_WRITES: {
                "queue": settings.course_queue,
                "routing_key": settings.course_queue,
            },
            REQUEUE_STALE_TASKS: {
                "queue": settings.maintenance_queue,
                "routing_key": settings.maintenance_queue,
            },
        },
        # Wait for RabbitMQ to confirm each publish: a 202 is only as good as the message.
        broker_transport_options={"confirm_publish": True},
        broker_connection_timeout=settings.publish_timeout_s,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        timezone="UTC",
    )
    return app


def publish_course_task(app: Celery, task_id: uuid.UUID) -> None:
    """Publish one task id (blocking; call from a thread). Raises if the broker did not confirm."""
    app.send_task(
        APPLY_COURSE_WRITES,
        args=[str(task_id)],
        task_id=f"{task_id}",
        retry=False,
    )
