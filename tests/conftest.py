"""Test harness. Integration and e2e tests run against the real PostgreSQL, RabbitMQ, a Milvus
Lite server and the real model, with real worker and API processes. Each run gets its own
database, vhost, collection and ports, and removes them afterwards."""

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from devstack.stack import LocalStack, free_port

RUN_ID = uuid.uuid4().hex[:8]
PG_ADMIN_DSN = os.environ.get(
    "COURSEWISE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE = os.environ.get("COURSEWISE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        elif "/faults/" in path:
            item.add_marker(pytest.mark.faults)
        elif "/contract/" in path:
            item.add_marker(pytest.mark.contract)
    # The fuzzer fills the catalogue with made-up courses, so it runs after the tests that read
    # it; fault injection restarts shared services (RabbitMQ), so it runs last of all.
    items.sort(key=lambda item: ("/faults/" in str(item.path), "/contract/" in str(item.path)))


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


async def _pg(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


class Names:
    def __init__(self, run_id: str = RUN_ID) -> None:
        self.database = f"coursewise_test_{run_id}"
        self.vhost = f"coursewise_test_{run_id}"
        self.collection = f"courses_test_{run_id}"


@pytest.fixture(scope="session")
def names() -> Names:
    return Names(RUN_ID)


@contextlib.contextmanager
def isolated_env(names: Names) -> Iterator[dict[str, str]]:
    """This run's own database and vhost (removed afterwards), and settings pointing at them."""
    pg_base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    asyncio.run(_pg(f'CREATE DATABASE "{names.database}"'))
    _rabbitmqctl("add_vhost", names.vhost)
    _rabbitmqctl("set_permissions", "-p", names.vhost, "guest", ".*", ".*", ".*")
    try:
        yield {
            "COURSEWISE_DATABASE_URL": f"{pg_base}/{names.database}",
            "COURSEWISE_BROKER_URL": f"{AMQP_BASE}/{names.vhost}",
            "COURSEWISE_MILVUS_URI": f"http://127.0.0.1:{free_port()}",
            "COURSEWISE_MILVUS_COLLECTION": names.collection,
            "COURSEWISE_SWEEP_INTERVAL_S": "2",
            "COURSEWISE_REQUEUE_AFTER_S": "30",
            # The suites write faster than any client should; the caps have their own tests.
            "COURSEWISE_MAX_PENDING_TASKS_PER_OWNER": "100000",
            "COURSEWISE_MAX_PENDING_TASKS": "100000",
            "COURSEWISE_API_KEY_CACHE_S": "1",
            # Small, quick models: the tests check behaviour, not quality.
            "COURSEWISE_ALS_FACTORS": "16",
            "COURSEWISE_ALS_ITERATIONS": "5",
            "COURSEWISE_ALS_THREADS": "1",
            # Two API processes: each must see popularity as it is, not as it was cached.
            "COURSEWISE_POPULAR_CACHE_S": "0",
            # The test machine is shared and often loaded: a search must not answer degraded
            # because a query embedding waited for a core (the budget has its own test).
            "COURSEWISE_SEARCH_SEMANTIC_BUDGET_S": "2",
        }
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{names.database}" WITH (FORCE)'))
        _rabbitmqctl("delete_vhost", names.vhost)


@contextlib.contextmanager
def running_stack(env: dict[str, str], label: str, api_workers: int = 1) -> Iterator[LocalStack]:
    """Milvus Lite, migrations, a worker, beat and the API, stopped by pid afterwards."""
    var_dir = Path(tempfile.mkdtemp(prefix=f"coursewise-{label}-{RUN_ID}-"))
    local = LocalStack(env=env, var_dir=var_dir, api_port=free_port())
    with local.running():
        local.start_milvus(var_dir / "milvus-data")
        local.prestart()
        local.api_key = local.create_key("test-admin", ["admin"], rate_limit=1_000_000)
        local.worker_metrics_port = free_port()
        local.start_worker(metrics_port=local.worker_metrics_port)
        local.start_training_worker()
        local.start_beat()
        local.start_api(workers=api_workers)
        yield local
    for name in ("api", "worker", "training-worker", "beat", "milvus"):
        log = var_dir / f"{name}.log"
        if log.exists() and "Traceback" in log.read_text(errors="replace"):
            print(f"\n--- {name}.log had a traceback: {log}")
    if os.environ.get("COURSEWISE_KEEP_TEST_LOGS") != "1":
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_env(names: Names) -> Iterator[dict[str, str]]:
    """Settings for this run's processes, pointing at this run's own names."""
    with isolated_env(names) as env:
        previous = {key: os.environ.get(key) for key in env}
        os.environ.update(env)  # for in-process tests that build Settings() themselves
        from shared.settings import get_settings

        get_settings.cache_clear()
        try:
            yield env
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            get_settings.cache_clear()


@pytest.fixture(scope="session")
def stack(stack_env: dict[str, str]) -> Iterator[LocalStack]:
    # Several API processes share the one Milvus server.
    with running_stack(stack_env, "test", api_workers=2) as local:
        yield local


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    """A client with this run's admin key."""
    with stack.client(timeout=60) as client:
        yield client


def wait_task(api: httpx.Client, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = api.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in ("succeeded", "failed"):
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {task['status']} after {timeout}s: {task}")
        time.sleep(0.2)


def accept(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status_url"] == f"/v1/tasks/{body['task_id']}"
    return str(body["task_id"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.contract.test_fuzz_api import FUZZ_REPORT
    from tests.faults.test_faults import REPORT

    if FUZZ_REPORT:
        terminalreporter.section("API fuzzing (schemathesis)")
        for line in FUZZ_REPORT:
            terminalreporter.write_line(line)
    if REPORT:
        terminalreporter.section("fault injection")
        for line in REPORT:
            terminalreporter.write_line(line)
