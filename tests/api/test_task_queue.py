"""A queued task says where it stands: its position among the queued tasks of its queue, oldest
first (no worker runs in-process, so writes stay queued)."""

import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.support.catalog import course, unique_id
from tests.support.http import accept
from tests.support.inprocess import InProcessApi

pytestmark = pytest.mark.anyio


async def _position(admin: httpx.AsyncClient, task_id: str) -> int | None:
    body = (await admin.get(f"/v1/tasks/{task_id}")).json()
    return body["queue_position"]


async def _quiet_queue(inprocess: InProcessApi) -> None:
    """Other tests of this run may have left writes queued ahead (positions would start after
    them) or finished some in the last minute (a rate): neither, from here on."""
    async with inprocess.sessionmaker() as session:
        await session.execute(text("UPDATE tasks SET status = 'failed' WHERE status = 'queued'"))
        await session.execute(
            text(
                "UPDATE tasks SET finished_at = now() - interval '1 hour'"
                " WHERE finished_at > now() - interval '1 hour'"
            )
        )
        await session.commit()


async def test_queued_writes_report_their_positions_in_order(
    admin: httpx.AsyncClient, inprocess: InProcessApi
) -> None:
    await _quiet_queue(inprocess)
    ids = [accept(await admin.post("/v1/courses", json=course(unique_id("q")))) for _ in range(4)]
    assert [await _position(admin, task_id) for task_id in ids] == [1, 2, 3, 4]
    first = (await admin.get(f"/v1/tasks/{ids[0]}")).json()
    # Nothing was applied in the last minute here: no rate, so no estimate.
    assert first["status"] == "queued" and first["expected_start_s"] is None

    # A worker takes the first: it is no longer queued, and the others move up.
    async with inprocess.sessionmaker() as session:
        await session.execute(
            text("UPDATE tasks SET status = 'processing' WHERE id = :id"), {"id": uuid.UUID(ids[0])}
        )
        await session.commit()
    assert [await _position(admin, task_id) for task_id in ids] == [None, 1, 2, 3]


async def test_the_estimate_follows_the_measured_apply_rate(
    admin: httpx.AsyncClient, inprocess: InProcessApi
) -> None:
    await _quiet_queue(inprocess)
    ids = [accept(await admin.post("/v1/courses", json=course(unique_id("r")))) for _ in range(3)]
    async with inprocess.sessionmaker() as session:
        # 20 writes of the queue applied over the last 10 seconds: 2 tasks/s.
        await session.execute(
            text(
                "UPDATE tasks SET status = 'succeeded', finished_at = now() - interval '10 s' "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": [uuid.UUID(i) for i in ids[:1]]},
        )
        for _ in range(19):
            done = accept(await admin.post("/v1/courses", json=course(unique_id("r"))))
            await session.execute(
                text("UPDATE tasks SET status = 'succeeded', finished_at = now() WHERE id = :id"),
                {"id": uuid.UUID(done)},
            )
        await session.commit()
    last = (await admin.get(f"/v1/tasks/{ids[2]}")).json()
    assert last["queue_position"] == 2
    # One task ahead at about 2 tasks/s (the clock moves between statements: about, not exactly).
    assert last["expected_start_s"] == pytest.approx(0.5, abs=0.1)
