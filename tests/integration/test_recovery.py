"""Failures are visible and recoverable: retry of failed tasks, the sweeper's give-up, the
broker topology, and reconciliation of Milvus with PostgreSQL."""

import asyncio
import subprocess
import time
import uuid
from typing import Any

import httpx
from kombu import Connection
from sqlalchemy import text

from cli.main import main as cli
from shared.catalog.reconcile import reconcile
from shared.db import create_engine, create_sessionmaker, transaction
from shared.ledger.kinds import APPLY_COURSE_WRITES
from shared.messaging import DEAD_LETTER_QUEUE, TASK_EXCHANGE
from shared.milvus import connect
from shared.settings import get_settings
from tests.support.catalog import course
from tests.support.http import accept, wait_task
from tests.support.stack import Names
from tests.support.stores import run


def test_failed_task_can_be_retried_once_the_cause_is_fixed(api: httpx.Client, capsys: Any) -> None:
    course_id = f"retry:{uuid.uuid4().hex[:8]}"
    failed = wait_task(api, accept(api.patch(f"/v1/courses/{course_id}", json={"rating": 4.5})))
    assert failed["status"] == "failed"

    refused = api.post(f"/v1/tasks/{uuid.uuid4()}/retry")
    assert refused.status_code == 404

    wait_task(api, accept(api.post("/v1/courses", json=course(course_id))))
    # The create came later (a higher version): the retried patch is superseded, not applied
    # over it; retrying it reports success without changing the newer course.
    key = api.headers["Authorization"].removeprefix("Bearer ")  # retry needs the admin scope
    argv = ["--api", str(api.base_url), "--api-key", key, "tasks", "retry", failed["task_id"]]
    assert cli(argv) == 0
    assert "1 task(s) queued again" in capsys.readouterr().out
    again = wait_task(api, failed["task_id"])
    assert again["status"] == "succeeded" and again["attempts"] == failed["attempts"] + 1
    assert api.get(f"/v1/courses/{course_id}").json()["rating"] is None

    not_failed = api.post(f"/v1/tasks/{again['task_id']}/retry")
    assert not_failed.status_code == 409
    assert not_failed.json()["error"]["code"] == "task_not_retryable"


def test_sweeper_gives_up_on_a_task_that_keeps_being_lost(api: httpx.Client) -> None:
    task_id = accept(api.post("/v1/courses", json=course(f"poison:{uuid.uuid4().hex[:8]}")))
    wait_task(api, task_id)

    async def make_it_look_lost() -> None:
        engine = create_engine(get_settings())
        async with transaction(create_sessionmaker(engine)) as session:
            await session.execute(
                text(
                    "UPDATE tasks SET status = 'queued', finished_at = NULL, "
                    "last_published_at = NULL, publish_count = :n WHERE id = :id"
                ),
                {"n": get_settings().max_publishes, "id": task_id},
            )
        await engine.dispose()

    asyncio.run(make_it_look_lost())
    task = wait_task(api, task_id, timeout=30)
    assert task["status"] == "failed"
    assert "dead-letter" in task["error"]


def test_queues_are_quorum_with_a_delivery_limit_and_dead_letter(
    names: Names, api: httpx.Client
) -> None:
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", names.vhost, "name", "type", "arguments"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    queues = {line.split("\t")[0]: line for line in listing.splitlines()[1:]}
    for name in ("coursewise.courses", "coursewise.maintenance", "coursewise.dead-letter"):
        assert "quorum" in queues[name], listing
    assert "x-delivery-limit" in queues["coursewise.courses"]
    assert "coursewise.dead-letter" in queues["coursewise.courses"]


def test_reconciliation_repairs_missing_stale_and_orphaned_entries(api: httpx.Client) -> None:
    ids = [f"recon:{uuid.uuid4().hex[:8]}:{i}" for i in range(4)]
    wait_task(api, accept(api.post("/v1/courses/bulk", json=[course(i) for i in ids])))

    async def baseline(ctx: Any, client: Any, collection: str) -> None:
        sessionmaker, indexer = ctx
        await reconcile(sessionmaker, client, collection, indexer)  # whatever others left

    run(baseline)
    settings = get_settings()
    milvus = connect(settings)
    try:
        gone, stale, orphan_of_deleted = ids[0], ids[1], ids[2]
        milvus.delete(settings.milvus_collection, ids=[gone])
        vector = [0.1] * settings.embedding_dim
        row = milvus.query(
            settings.milvus_collection, filter=f'id == "{stale}"', output_fields=["*"]
        )[0]
        milvus.upsert(settings.milvus_collection, [{**row, "version": 1}])
        wait_task(api, accept(api.delete(f"/v1/courses/{orphan_of_deleted}")))
        milvus.upsert(settings.milvus_collection, [{**row, "id": orphan_of_deleted}])
        milvus.upsert(
            settings.milvus_collection, [{**row, "id": "recon:never-existed", "vector": vector}]
        )
    finally:
        milvus.close()

    expected = {i: api.get(f"/v1/courses/{i}").json()["version"] for i in (ids[0], ids[1])}

    async def body(ctx: Any, client: Any, collection: str) -> None:
        sessionmaker, indexer = ctx
        report = await reconcile(sessionmaker, client, collection, indexer)
        assert (report.missing, report.stale, report.orphaned) == (1, 1, 2), report
        assert report.repaired == 4
        again = await reconcile(sessionmaker, client, collection, indexer)
        assert again.repaired == 0, again
        found = client.query(
            collection, filter=f"id in {[*ids, 'recon:never-existed']}", output_fields=["version"]
        )
        versions = {hit["id"]: hit["version"] for hit in found}
        assert set(versions) == {ids[0], ids[1], ids[3]}
        for course_id, version in expected.items():
            assert versions[course_id] == version

    run(body)


def test_a_poison_message_ends_in_the_dead_letter_queue(names: Names, api: httpx.Client) -> None:
    """A message no worker may process (here: pickle, which workers refuse) is rejected and
    dead-lettered once, not redelivered in a loop."""
    settings = get_settings()

    def dead_letters() -> int:
        listing = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", names.vhost, "name", "messages"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        counts = dict(line.split("\t") for line in listing.splitlines()[1:])
        return int(counts.get(DEAD_LETTER_QUEUE, "0"))

    before = dead_letters()
    with Connection(settings.broker_url) as connection:
        producer = connection.Producer()
        producer.publish(
            b"\x80\x04N.",
            exchange=TASK_EXCHANGE,
            routing_key=settings.write_queue,
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers={"task": APPLY_COURSE_WRITES, "id": str(uuid.uuid4())},
            delivery_mode=2,
        )

    deadline = time.monotonic() + 30
    while dead_letters() < before + 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # and it stays there: not redelivered, not duplicated
    assert dead_letters() == before + 1
    # The worker is still consuming normally afterwards.
    task = wait_task(
        api, accept(api.post("/v1/courses", json=course(f"after-poison:{uuid.uuid4().hex[:6]}")))
    )
    assert task["status"] == "succeeded"
