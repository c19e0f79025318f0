"""The Celery app configuration shared by the API (which only publishes, by task name) and the
workers (which register the task bodies). The API never imports worker code. The Celery tasks
that apply ledger tasks, and their queues, come from the table of kinds (shared/ledger/kinds.py);
the periodic ones are named here."""

import contextlib
import socket
import struct
import uuid
from collections.abc import Iterable
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher
from kombu import Connection, Exchange, Producer, Queue, pools

from shared.ledger.kinds import KINDS, kind_of
from shared.ledger.schemas import TaskType
from shared.settings import Settings

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


def publishing_connection(app: Celery, confirm: bool = True, heartbeat: bool = False) -> Connection:
    """A connection for publishing only, every wait on it bounded: connect, socket reads (channel
    open, confirm_select, declares) and writes. With `heartbeat`, AMQP heartbeats so a
    half-open connection is noticed; its owner must call `keep_alive` while idle (else the
    broker closes it after two missed heartbeats). Consumers' connections keep Celery's
    settings: a read timeout there would cut an idle consumer's blocking reads."""
    conf = app.conf
    timeout = conf.coursewise_socket_timeout_s
    return app.connection_for_write(
        heartbeat=(conf.coursewise_heartbeat_s or None) if heartbeat else None,
        transport_options={
            "confirm_publish": confirm,
            "read_timeout": timeout,
            "write_timeout": timeout,
        },
    )


def keep_alive(connection: Connection) -> None:
    """Between publishes: read what the broker sent (its heartbeats, late confirms), send ours,
    and raise if the broker missed two (a half-open connection)."""
    with contextlib.suppress(TimeoutError):
        connection.drain_events(timeout=0)
    connection.heartbeat_check()


def drop(connection: Connection | None) -> None:
    """Let go of a connection without the AMQP close handshake: after an error the broker may
    never answer it (a graceful close is an unbounded wait). The socket is closed; the broker
    cleans up when it notices."""
    if connection is None:
        return
    with contextlib.suppress(Exception):
        connection.collect()


def queue_depths(connection: Connection, queues: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Each queue's ready messages (waiting, not yet delivered to a consumer) and consumers.
    Passive: it only asks, and never creates a queue with the wrong arguments."""
    channel = connection.channel()
    try:
        depths = {}
        for queue in queues:
            _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
            depths[queue] = (int(messages), int(consumers))
        return depths
    finally:
        channel.close()


def declare_topology(app: Celery) -> None:
    """Declare the exchanges and queues, the dead-letter queue included (nobody consumes it, so
    no worker would declare it). Once per process start (prestart, the API's publisher, the
    sweeper), not per publish: `publish_write` declares nothing."""
    connection = publishing_connection(app, confirm=False)
    try:
        connection.ensure_connection(max_retries=1, timeout=app.conf.coursewise_publish_timeout_s)
        channel = connection.default_channel
        for queue in [*app.conf.task_queues, dead_letter_queue()]:
            queue.bind(channel).declare()
    finally:
        drop(connection)


class BoundedAMQP(AMQP):
    """Every task message Celery publishes (beat's schedule, a worker's retry, `send_task`)
    waits at most the publish timeout for its socket write and for its publisher confirm, and
    declares nothing (the topology is declared at start-up). Celery has no setting for either:
    without this, beat waited for a confirm forever while RabbitMQ held confirms back."""

    @property
    def producer_pool(self) -> Any:
        # Producers on publishing connections (socket read/write timeouts): after a failed
        # publish the pool closes the producer's channel gracefully, and on a connection
        # without timeouts that close waited for the broker forever.
        pool: Any = self.__dict__.get("_producer_pool")
        if pool is None:
            pool = pools.producers[publishing_connection(self.app)]
            pool.limit = self.app.pool.limit
            self._producer_pool = pool
        return pool

    def _create_task_sender(self) -> Any:
        send = super()._create_task_sender()
        timeout = self.app.conf.coursewise_publish_timeout_s

        def send_task_message(producer: Any, name: str, message: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            kwargs.setdefault("confirm_timeout", timeout)
            if kwargs.get("declare") is None:
                kwargs["declare"] = []
            return send(producer, name, message, **kwargs)

        return send_task_message


class UnconfirmedEventDispatcher(EventDispatcher):
    """Worker events (task-*, worker-heartbeat) published without publisher confirms, and with a
    bounded socket write. The worker publishes them from its consumer loop: a confirm wait
    there (RabbitMQ holding confirms back under a memory alarm) stopped it receiving and
    acking anything. Events are monitoring data (Flower); losing one is harmless."""

    def __init__(self, connection: Connection | None = None, *args: Any, **kwargs: Any) -> None:
        if connection is not None:
            timeout = self.app.conf.coursewise_socket_timeout_s if self.app else None
            options = dict(connection.transport_options or {})
            options["confirm_publish"] = False
            options["write_timeout"] = options.get("write_timeout") or timeout
            connection.transport_options = options  # for its reconnections
            # The worker connected it already: its channels are made from here on, and its
            # socket gets the write timeout now.
            raw = getattr(connection, "_connection", None)
            if raw is not None:
                raw.confirm_publish = False
                sock = getattr(getattr(raw, "transport", None), "sock", None)
                if sock is not None and timeout:
                    seconds = int(timeout)
                    micros = int((timeout - seconds) * 1_000_000)
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET,
                            socket.SO_SNDTIMEO,
                            struct.pack("ll", seconds, micros),
                        )
        super().__init__(connection, *args, **kwargs)


class UnconfirmedEvents(Events):
    dispatcher_cls = "shared.messaging:UnconfirmedEventDispatcher"


def _route(queue: str) -> dict[str, str]:
    return {"queue": queue, "routing_key": queue}


def task_routes(settings: Settings) -> dict[str, dict[str, str]]:
    """Every kind's Celery task to its queue (learner writes share the write queue with courses;
    training has its own queue and worker, so a retrain never delays a write), and the periodic
    tasks to theirs."""
    routes = {kind.task: _route(kind.queue(settings)) for kind in KINDS.values()}
    routes[RECONCILE_INDEX] = _route(settings.maintenance_queue)
    routes[SCHEDULED_RETRAIN] = _route(settings.training_queue)
    routes[DELIVER_WEBHOOK] = _route(settings.webhook_queue)
    return routes


def build_celery(settings: Settings) -> Celery:
    app = Celery(
        "coursewise",
        broker=settings.broker_url,
        amqp="shared.messaging:BoundedAMQP",
        events="shared.messaging:UnconfirmedEvents",
    )
    app.conf.update(
        # Ours (Celery ignores them): the bounds of every broker wait (BoundedAMQP,
        # publishing_connection).
        coursewise_publish_timeout_s=settings.publish_timeout_s,
        coursewise_socket_timeout_s=settings.broker_socket_timeout_s,
        coursewise_heartbeat_s=settings.broker_heartbeat_s,
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
        # Task events for Flower, sent without confirms (UnconfirmedEventDispatcher).
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
    (blocking; call from a thread). Raises if the broker did not confirm within the publish
    timeout (unless `producer` is a producer whose channel the caller waits confirms on).
    Declares nothing: the topology is declared once at start-up."""
    app.send_task(
        kind_of(task_type).task,
        args=[str(task_id)],
        task_id=str(task_id),
        retry=False,
        producer=producer,
        headers={REQUEST_ID_HEADER: request_id} if request_id else None,
    )
