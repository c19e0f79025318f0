"""A process that hangs (SIGSTOP) fails its liveness check and is restarted by the runner, and
the sweeper is safe to run twice: with a second sweeper beside the stack's own, every write
whose publish was lost is still applied."""

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from devstack.stack import LocalStack, Process
from shared import liveness
from shared.db import create_engine, create_sessionmaker, transaction
from shared.ledger.models import Task
from shared.ledger.repository import TaskRepository
from shared.settings import Settings
from tests.support.catalog import course
from tests.support.http import wait_task


def _eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still not true after {timeout:.0f} s")
        time.sleep(0.5)


@pytest.fixture
def second_sweeper(stack: LocalStack, stack_env: dict[str, str]) -> Iterator[LocalStack]:
    """Another runner on the same database and vhost, with a short liveness bound."""
    var_dir = Path(tempfile.mkdtemp(prefix="coursewise-liveness-"))
    runner = LocalStack(
        env={**stack_env, "COURSEWISE_LIVENESS_INTERVAL_S": "0.5"},
        var_dir=var_dir,
        liveness_max_age=5.0,
    )
    with runner.running():
        runner.start_sweeper()
        yield runner


def _heartbeats(runner: LocalStack, process: Process) -> bool:
    directory = runner.liveness_dir(process.name)
    return (directory / f"sweeper-{process.popen.pid}").exists()


def test_a_stopped_sweeper_fails_its_liveness_check_and_is_restarted(
    second_sweeper: LocalStack,
) -> None:
    runner = second_sweeper
    (sweeper,) = runner.processes
    _eventually(lambda: _heartbeats(runner, sweeper), 60, "the sweeper's first heartbeat")
    directory = str(runner.liveness_dir("sweeper"))
    assert liveness.main(["check", "--dir", directory, "--max-age", "5"]) == 0
    stopped = sweeper.popen.pid
    os.kill(stopped, signal.SIGSTOP)  # alive, but its loop runs no more
    try:
        _eventually(lambda: sweeper.hung(), 60, "the stopped sweeper counts as hung")
        assert liveness.main(["check", "--dir", directory, "--max-age", "5"]) == 1
        assert runner.supervise() == ["sweeper (hung)"]
    finally:
        with contextlib.suppress(ProcessLookupError):  # restarted: killed already
            os.kill(stopped, signal.SIGCONT)
    assert sweeper.popen.pid != stopped and sweeper.alive()
    _eventually(lambda: _heartbeats(runner, sweeper), 60, "the new sweeper's heartbeat")
    assert not sweeper.hung()


def test_two_sweepers_at_once_lose_nothing(second_sweeper: LocalStack, api: httpx.Client) -> None:
    ids = [f"twice:{os.getpid()}:{n}" for n in range(20)]

    async def accepted_but_never_published() -> list[str]:
        engine = create_engine(Settings())
        sessionmaker = create_sessionmaker(engine)
        try:
            async with transaction(sessionmaker) as session:
                repo = TaskRepository(session)
                tasks = [
                    await repo.create(
                        type="course.upsert", payload={"items": [course(i)]}, received=1
                    )
                    for i in ids
                ]
                # As if every publish had failed: only the sweepers can bring them in.
                await session.execute(
                    update(Task)
                    .where(Task.id.in_([t.id for t in tasks]))
                    .values(last_published_at=None)
                )
            return [str(t.id) for t in tasks]
        finally:
            await engine.dispose()

    task_ids = asyncio.run(accepted_but_never_published())
    outcomes = [wait_task(api, task_id, timeout=180)["status"] for task_id in task_ids]
    assert outcomes == ["succeeded"] * len(ids)
    for course_id in ids:
        assert api.get(f"/v1/courses/{course_id}").status_code == 200
