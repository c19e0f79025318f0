"""The sweeper against a real PostgreSQL and RabbitMQ (a database and a vhost of its own, no
worker): tasks whose messages are all still waiting in their queue are neither published again
nor given up on, however long they have waited; once their messages are gone, the same round
publishes each of them again."""

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from shared.db import create_engine, create_sessionmaker, transaction
from shared.ledger.models import Task
from shared.ledger.repository import TaskRepository
from shared.messaging import build_celery, declare_topology, publish_write, publishing_connection
from shared.settings import Settings
from tests.support.inprocess import database_settings, migrated_database
from tests.support.stack import AMQP_BASE, RUN_ID
from workers.sweeper import RoundReport, Sweeper, SweepPublisher


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def settings() -> Iterator[Settings]:
    vhost = f"coursewise_test_sweep_{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        base = database_settings(
            f"{RUN_ID}sweep", broker_url=f"{AMQP_BASE}/{vhost}", requeue_after_s=5
        )
        with migrated_database(base) as migrated:
            yield migrated
    finally:
        _ctl("delete_vhost", vhost)


def test_a_backlog_is_waited_for_and_lost_messages_are_published_again(
    settings: Settings,
) -> None:
    app = build_celery(settings)
    declare_topology(app)

    def purge_write_queue() -> None:
        connection = publishing_connection(app, confirm=False)
        try:
            connection.default_channel.queue_purge(settings.write_queue)
        finally:
            connection.release()

    async def scenario() -> tuple[RoundReport, RoundReport, dict[str, int], int]:
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        sweeper = Sweeper(settings, sessionmaker, SweepPublisher(app))
        try:
            async with transaction(sessionmaker) as session:
                repo = TaskRepository(session)
                tasks = [
                    await repo.create(type="course.upsert", payload={"items": []}, received=0)
                    for _ in range(3)
                ]
                # Long past any re-publish wait, and one of them out of publishes.
                await session.execute(
                    update(Task)
                    .where(Task.id.in_([task.id for task in tasks]))
                    .values(last_published_at=datetime.now(UTC) - timedelta(hours=1))
                )
                await session.execute(
                    update(Task)
                    .where(Task.id == tasks[0].id)
                    .values(publish_count=settings.max_publishes)
                )
            for task in tasks:  # each message is in the queue, behind nobody: just unconsumed
                publish_write(app, task.id, "course.upsert")
            waiting = await sweeper.sweep()
            await asyncio.to_thread(purge_write_queue)  # now every message is gone
            lost = await sweeper.sweep()
            ready = await asyncio.to_thread(sweeper.publisher.ready, [settings.write_queue])
            async with sessionmaker() as session:
                queued = (await TaskRepository(session).queued_by_type()).get("course.upsert", 0)
            return waiting, lost, ready, queued
        finally:
            sweeper.publisher.reset()
            await engine.dispose()

    try:
        waiting, lost, ready, queued = asyncio.run(scenario())
    finally:
        app.close()
    assert (waiting.published, waiting.given_up) == (0, 0)
    assert settings.write_queue in waiting.waiting
    # Messages gone: the two with publishes left are published again, the third is failed.
    assert (lost.published, lost.given_up) == (2, 1)
    assert settings.write_queue not in lost.waiting
    assert ready == {settings.write_queue: 2}
    assert queued == 2
