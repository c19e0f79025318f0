"""The API's publisher: many accepted writes share one channel and wait for their confirms
together; each still learns whether the broker took its own message."""

import asyncio
import uuid

from kombu import Connection

from api.publisher import ConfirmedPublisher
from devstack.stack import free_port
from shared.ledger.kinds import APPLY_COURSE_WRITES
from shared.messaging import REQUEST_ID_HEADER, build_celery, declare_topology
from shared.settings import Settings


def _settings(stack_env: dict[str, str], **changes: str) -> Settings:
    values = {k.removeprefix("COURSEWISE_").lower(): v for k, v in stack_env.items()}
    # pydantic-settings types its own _-prefixed init options; these keys are all fields
    return Settings(**(values | changes))  # type: ignore[arg-type]


def test_concurrent_publishes_are_each_confirmed_and_delivered(stack_env: dict[str, str]) -> None:
    queue = f"test.publisher.{uuid.uuid4().hex[:8]}"  # not the session worker's queue
    settings = _settings(stack_env, write_queue=queue)
    celery = build_celery(settings)
    declare_topology(celery)
    publisher = ConfirmedPublisher(celery, timeout_s=5)
    publisher.start()
    ids = [uuid.uuid4() for _ in range(60)]

    async def publish_all() -> None:
        await asyncio.gather(
            *(publisher.publish(i, "course.upsert", f"req-{n}") for n, i in enumerate(ids))
        )

    try:
        asyncio.run(publish_all())
        received = {}
        with Connection(settings.broker_url) as connection:
            channel = connection.default_channel
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                headers = message.headers
                received[headers["id"]] = (headers["task"], headers[REQUEST_ID_HEADER])
            channel.queue_delete(queue)
    finally:
        publisher.stop()
        celery.close()
    assert received == {str(i): (APPLY_COURSE_WRITES, f"req-{n}") for n, i in enumerate(ids)}


def test_an_unreachable_broker_fails_each_publish_in_time(stack_env: dict[str, str]) -> None:
    settings = _settings(stack_env, broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    celery = build_celery(settings)
    publisher = ConfirmedPublisher(celery, timeout_s=1)
    publisher.start()

    async def publish_two() -> tuple[BaseException | None, BaseException | None]:
        return await asyncio.wait_for(
            asyncio.gather(
                publisher.publish(uuid.uuid4(), "course.upsert", None),
                publisher.publish(uuid.uuid4(), "interaction.batch", None),
                return_exceptions=True,
            ),
            timeout=15,
        )

    try:
        outcomes = asyncio.run(publish_two())
    finally:
        publisher.stop()
        celery.close()
    assert all(isinstance(outcome, Exception) for outcome in outcomes), outcomes


def test_a_publish_after_the_connection_broke_goes_out_on_a_new_one(
    stack_env: dict[str, str],
) -> None:
    queue = f"test.publisher.{uuid.uuid4().hex[:8]}"
    settings = _settings(stack_env, write_queue=queue)
    celery = build_celery(settings)
    declare_topology(celery)
    publisher = ConfirmedPublisher(celery, timeout_s=5)
    publisher.start()
    after = [uuid.uuid4(), uuid.uuid4()]

    async def scenario() -> None:
        await publisher.publish(uuid.uuid4(), "course.upsert", None)
        first_connection = publisher._connection
        # Its connection breaks while idle (as when the broker restarts). The publishing thread
        # is waiting for work, so touching its connection from here is safe.
        first_connection.collect()
        await asyncio.gather(*(publisher.publish(i, "course.upsert", None) for i in after))
        assert publisher._connection is not first_connection

    try:
        asyncio.run(scenario())
        with Connection(settings.broker_url) as connection:
            channel = connection.default_channel
            ids = []
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                ids.append(message.headers["id"])
            channel.queue_delete(queue)
    finally:
        publisher.stop()
        celery.close()
    assert {str(i) for i in after} <= set(ids)
