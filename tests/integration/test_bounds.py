"""Every broker wait has a bound: a broker that accepts a connection and then never answers
(a black-holing proxy in front of the real RabbitMQ) fails a publish in time, leaves no thread
stuck, and the write it carried is published by the sweeper later; a locked task row never
makes anyone wait; worker events still reach monitoring (Flower) without confirms."""

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.publisher import ConfirmedPublisher
from api.write_path import WriteDispatcher
from devstack.stack import LocalStack
from shared.db import create_engine, create_sessionmaker, transaction
from shared.ledger.models import Task
from shared.ledger.repository import LedgerInserts, TaskRepository
from shared.ledger.schemas import TaskType
from shared.messaging import build_celery, declare_topology, publish_write
from shared.settings import Settings
from tests.support.catalog import course
from tests.support.http import accept, wait_task
from tests.support.proxy import BlackholeProxy, blackhole_proxy
from tests.support.stack import Names


def _through(proxy: BlackholeProxy, names: Names, **changes: Any) -> Settings:
    return Settings(
        broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/{names.vhost}",
        publish_timeout_s=2,
        broker_socket_timeout_s=3,
        **changes,
    )


def _eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still not true after {timeout:.0f} s")
        time.sleep(0.2)


def _in_thread(call: Callable[[], None], give_up_s: float) -> BaseException | None:
    """Run `call` in a thread; its exception, or AssertionError if it never returns (a wait
    with no bound: the thread is left behind, as a daemon)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(give_up_s)
    if thread.is_alive():
        raise AssertionError(f"still waiting after {give_up_s:.0f} s: a wait without a bound")
    return outcome[0]


def test_a_celery_publish_to_a_silent_broker_fails_within_its_bound(
    stack: LocalStack, names: Names
) -> None:
    """What beat, the sweeper and a worker's retries publish: the confirm wait is bounded."""
    with blackhole_proxy("127.0.0.1", 5672) as proxy:
        app = build_celery(_through(proxy, names))
        try:
            declare_topology(app)
            assert _in_thread(lambda: publish_write(app, uuid.uuid4(), "course.upsert"), 60) is None
            proxy.blackhole()
            error = _in_thread(lambda: publish_write(app, uuid.uuid4(), "course.upsert"), 60)
            assert error is not None  # it failed instead of waiting for a confirm forever
        finally:
            proxy.resume()
            app.close()


def test_the_api_publisher_fails_in_time_drops_the_socket_and_recovers(
    stack: LocalStack, names: Names
) -> None:
    with blackhole_proxy("127.0.0.1", 5672) as proxy:
        settings = _through(proxy, names)
        app = build_celery(settings)
        publisher = ConfirmedPublisher(app, settings.publish_timeout_s, idle_check_s=0.5)
        publisher.start()

        async def publish() -> BaseException | None:
            try:
                await asyncio.wait_for(
                    publisher.publish(uuid.uuid4(), "course.upsert", None), timeout=60
                )
            except TimeoutError:
                raise AssertionError("the publish waited without a bound") from None
            except Exception as exc:
                return exc
            return None

        try:
            assert asyncio.run(publish()) is None
            proxy.blackhole()
            assert asyncio.run(publish()) is not None
            # Back waiting for work: not stuck closing a connection the broker never answers.
            _eventually(lambda: publisher.stalled_for() == 0, 60, "the thread is idle")
            proxy.resume()
            assert asyncio.run(publish()) is None
        finally:
            publisher.stop()
            app.close()


def test_a_write_whose_publish_timed_out_is_published_by_the_sweeper(
    stack: LocalStack, names: Names, api: httpx.Client
) -> None:
    with blackhole_proxy("127.0.0.1", 5672) as proxy:
        settings = _through(proxy, names)
        app = build_celery(settings)
        publisher = ConfirmedPublisher(app, settings.publish_timeout_s)
        publisher.start()
        course_id = f"bounds:{uuid.uuid4().hex[:8]}"

        async def accept_while_the_broker_is_silent() -> str:
            engine = create_engine(settings)
            sessionmaker = create_sessionmaker(engine)
            try:
                dispatcher = WriteDispatcher(
                    sessionmaker, settings, LedgerInserts(engine), publisher
                )
                # The connection is up first, then the broker goes silent under it.
                await dispatcher.accept(TaskType.course_upsert, [course(f"{course_id}:warm")])
                proxy.blackhole()
                accepted = await asyncio.wait_for(
                    dispatcher.accept(TaskType.course_upsert, [course(course_id)]), timeout=60
                )
                return str(accepted.task_id)
            finally:
                await engine.dispose()

        try:
            task_id = asyncio.run(accept_while_the_broker_is_silent())
        finally:
            publisher.stop()
            proxy.resume()
            app.close()
    # Accepted (the ledger holds it); the stack's sweeper publishes it, its worker applies it.
    task = wait_task(api, task_id, timeout=180)
    assert task["status"] == "succeeded", task
    assert api.get(f"/v1/courses/{course_id}").status_code == 200


def test_a_locked_task_row_is_skipped_not_waited_for(stack: LocalStack) -> None:
    async def scenario() -> tuple[Task | None, list[uuid.UUID], str]:
        engine = create_engine(Settings())
        sessionmaker = create_sessionmaker(engine)
        try:
            async with transaction(sessionmaker) as session:
                task = await TaskRepository(session).create(
                    type="course.upsert", payload={"items": []}, received=0
                )
            async with sessionmaker() as holder:
                # Another transaction holds the row (a stuck worker, a stuck sweeper).
                await holder.execute(select(Task.id).where(Task.id == task.id).with_for_update())
                async with transaction(sessionmaker) as session:
                    claimed = await asyncio.wait_for(
                        TaskRepository(session).claim(task.id), timeout=30
                    )
                async with sessionmaker() as session:
                    due, _ = await asyncio.wait_for(
                        TaskRepository(session).claim_due(
                            now=_far_future(),
                            requeue_after=_seconds(5),
                            stuck_after=_seconds(60),
                            max_publishes=100,
                            limit=10_000,
                        ),
                        timeout=30,
                    )
                    await session.rollback()
                await holder.rollback()
            async with transaction(sessionmaker) as session:
                status = (await TaskRepository(session).get(task.id)).status  # type: ignore[union-attr]
                await TaskRepository(session).fail(task.id, "test row")
            return claimed, [task_id for task_id, _ in due], str(status)
        finally:
            await engine.dispose()

    claimed, due, status = asyncio.run(scenario())
    assert claimed is None  # skipped, without waiting for the holder
    assert status == "queued"  # and left as it was for whoever holds it
    assert due, "the sweeper's claim saw nothing due at all"
    assert all(isinstance(task_id, uuid.UUID) for task_id in due)


def _far_future() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=1)


def _seconds(n: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)


@pytest.mark.parametrize("wanted", [{"worker-heartbeat", "task-received", "task-succeeded"}])
def test_worker_events_still_reach_monitoring(
    stack: LocalStack, api: httpx.Client, wanted: set[str]
) -> None:
    """What Flower reads: the workers' heartbeats and task events, sent without confirms."""
    app = build_celery(Settings())
    seen: set[str] = set()
    task_ids: set[str] = set()

    def on_event(event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "worker-heartbeat" or event.get("uuid") in task_ids:
            seen.add(kind)

    stop = threading.Event()
    ready = threading.Event()

    def capture() -> None:
        with app.connection_for_read() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": on_event})

            def between_reads() -> None:  # every second at most; its queue is bound
                receiver.should_stop = stop.is_set() or wanted <= seen
                ready.set()

            receiver.on_iteration = between_reads
            for _ in receiver.itercapture(limit=None, timeout=None, wakeup=False):
                pass

    thread = threading.Thread(target=capture, daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the event receiver did not start"
        task_id = accept(api.post("/v1/courses", json=course(f"events:{uuid.uuid4().hex[:8]}")))
        task_ids.add(task_id)
        wait_task(api, task_id)
        thread.join(60)
    finally:
        stop.set()
        app.close()
    assert wanted <= seen, seen
