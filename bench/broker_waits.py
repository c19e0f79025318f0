"""What the broker bounds cost, and why they are where they are (docs/operations.md, "Every
broker wait has a bound"). On a vhost of this run only:

1. a worker event (what the consumer loop sends for Flower) published with a confirm, as
   before, and without (UnconfirmedEventDispatcher): the consumer loop's time per event;
2. a confirmed task publish through the bounded sender (BoundedAMQP), per message;
3. a consumer's blocking read on a connection with a socket read timeout (what setting it for
   every connection would do to an idle consumer): it fails instead of waiting for work.

    .venv/bin/python -m bench.broker_waits [--events 500]
"""

import argparse
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator

from kombu import Connection, Queue

from shared.messaging import UnconfirmedEventDispatcher, build_celery, publish_write
from shared.settings import Settings

AMQP = os.environ.get("COURSEWISE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


@contextlib.contextmanager
def own_vhost() -> Iterator[str]:
    vhost = f"coursewise_bench_waits_{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
    )
    try:
        yield f"{AMQP}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)


def per_event_us(url: str, events: int, confirmed: bool) -> float:
    settings = Settings(broker_url=url)
    app = build_celery(settings)
    connection = app.connection_for_write(transport_options={"confirm_publish": True})
    connection.ensure_connection(max_retries=1, timeout=5)
    from celery.events.dispatcher import EventDispatcher

    cls = EventDispatcher if confirmed else UnconfirmedEventDispatcher
    dispatcher = cls(connection, hostname="bench@host", app=app)
    try:
        dispatcher.send("worker-heartbeat")  # warm
        started = time.perf_counter()
        for _ in range(events):
            dispatcher.send("worker-heartbeat", freq=2.0)
        return (time.perf_counter() - started) / events * 1e6
    finally:
        dispatcher.close()
        connection.collect()
        app.close()


def per_publish_ms(url: str, publishes: int) -> float:
    settings = Settings(broker_url=url, write_queue=f"bench.{uuid.uuid4().hex[:6]}")
    app = build_celery(settings)
    try:
        with app.connection_for_write() as connection:
            for queue in app.conf.task_queues:
                queue.bind(connection.default_channel).declare()
        publish_write(app, uuid.uuid4(), "course.upsert")  # warm
        started = time.perf_counter()
        for _ in range(publishes):
            publish_write(app, uuid.uuid4(), "course.upsert")
        return (time.perf_counter() - started) / publishes * 1e3
    finally:
        app.close()


def idle_consumer_with_read_timeout(url: str, read_timeout: float) -> str:
    with Connection(url, transport_options={"read_timeout": read_timeout}) as connection:
        channel = connection.channel()
        queue = Queue(f"bench.idle.{uuid.uuid4().hex[:6]}", auto_delete=True)(channel)
        queue.declare()
        consumer = connection.Consumer(queue, callbacks=[lambda body, message: None])
        consumer.consume()
        started = time.monotonic()
        try:
            connection.drain_events()  # a consumer waiting for work, as Celery's does
        except TimeoutError as exc:
            return f"raised {type(exc).__name__} after {time.monotonic() - started:.1f} s idle"
        return "returned (a message arrived)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.1f} (1 min), cores: {os.cpu_count()}")
    with own_vhost() as url:
        confirmed = per_event_us(url, args.events, confirmed=True)
        unconfirmed = per_event_us(url, args.events, confirmed=False)
        print(
            f"worker event in the consumer loop: {confirmed:.0f} us confirmed, "
            f"{unconfirmed:.0f} us unconfirmed ({confirmed / unconfirmed:.1f}x), "
            f"{args.events} events each"
        )
        print(f"bounded confirmed task publish: {per_publish_ms(url, 200):.2f} ms per message")
        print(f"idle consumer, read timeout 2 s: {idle_consumer_with_read_timeout(url, 2.0)}")


if __name__ == "__main__":
    main()
