"""This run's own database, vhost, collection and ports, and a whole local stack on them
(Milvus Lite, migrations, worker, training worker, beat, sweeper, API), removed afterwards."""

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from devstack.stack import LocalStack, free_port
from tests.support.broker import Broker

RUN_ID = uuid.uuid4().hex[:8]
PG_ADMIN_DSN = os.environ.get(
    "COURSEWISE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE = os.environ.get("COURSEWISE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


async def pg(sql: str) -> None:
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


@contextlib.contextmanager
def isolated_env(names: Names, broker: Broker | None = None) -> Iterator[dict[str, str]]:
    """This run's own database and vhost (removed afterwards), and settings pointing at them.
    The vhost is on the machine's RabbitMQ, or on `broker` (a node of this run's own)."""
    pg_base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    ctl = rabbitmqctl if broker is None else broker.ctl
    amqp = f"{AMQP_BASE}/{names.vhost}" if broker is None else broker.url(names.vhost)
    asyncio.run(pg(f'CREATE DATABASE "{names.database}"'))
    ctl("add_vhost", names.vhost)
    ctl("set_permissions", "-p", names.vhost, "guest", ".*", ".*", ".*")
    try:
        yield {
            "COURSEWISE_DATABASE_URL": f"{pg_base}/{names.database}",
            "COURSEWISE_BROKER_URL": amqp,
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
            # The test machine is shared and often loaded: a search must not answer degraded
            # because a query embedding waited for a core (the budget has its own test).
            "COURSEWISE_SEARCH_SEMANTIC_BUDGET_S": "2",
            # The fuzzer registers whatever webhook URLs pass the guard: a dead receiver is given
            # up on soon (and the fuzz test removes its endpoints afterwards).
            "COURSEWISE_WEBHOOK_RETRY_FOR_S": "120",
        }
    finally:
        asyncio.run(pg(f'DROP DATABASE IF EXISTS "{names.database}" WITH (FORCE)'))
        if broker is None:
            rabbitmqctl("delete_vhost", names.vhost)  # an own node goes with its vhosts


@contextlib.contextmanager
def running_stack(env: dict[str, str], label: str, api_workers: int = 1) -> Iterator[LocalStack]:
    """Milvus Lite, migrations, a worker, beat, the sweeper and the API, stopped by pid
    afterwards."""
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
        local.start_sweeper()
        local.start_api(workers=api_workers)
        yield local
    for name in ("api", "worker", "training-worker", "beat", "sweeper", "milvus"):
        log = var_dir / f"{name}.log"
        if log.exists() and "Traceback" in log.read_text(errors="replace"):
            print(f"\n--- {name}.log had a traceback: {log}")
    if os.environ.get("COURSEWISE_KEEP_TEST_LOGS") != "1":
        shutil.rmtree(var_dir, ignore_errors=True)


@contextlib.contextmanager
def exported(env: dict[str, str]) -> Iterator[None]:
    """`env` in os.environ (and the settings cache cleared) meanwhile, restored afterwards."""
    from shared.settings import get_settings

    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
