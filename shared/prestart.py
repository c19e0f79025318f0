"""Prestart: wait for PostgreSQL, create the database if missing, migrate it to head, and make
sure the Milvus collection exists. Run before the API and workers start (compose and local).

    python -m shared.prestart
"""

import asyncio
import logging
import time
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from shared.messaging import build_celery, declare_topology
from shared.milvus import connect, ensure_collection
from shared.settings import Settings, get_settings

log = logging.getLogger("coursewise.prestart")
ROOT = Path(__file__).resolve().parent.parent


def _dsn(settings: Settings, database: str | None = None) -> str:
    url = make_url(settings.database_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def ensure_database(settings: Settings, *, wait_s: float = 30.0) -> None:
    name = make_url(settings.database_url).database
    deadline = time.monotonic() + wait_s
    while True:
        try:
            connection = await asyncpg.connect(_dsn(settings, "postgres"), timeout=5)
            break
        except (OSError, asyncpg.PostgresError) as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"PostgreSQL is unreachable: {exc}") from None
            await asyncio.sleep(1)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name)
    finally:
        await connection.close()


def migrate(settings: Settings) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = settings.database_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    settings = get_settings()
    asyncio.run(ensure_database(settings))
    migrate(settings)
    log.info("database migrated to head")
    celery = build_celery(settings)
    try:
        declare_topology(celery)
    finally:
        celery.close()
    log.info("rabbitmq queues declared")
    milvus = connect(settings)
    ensure_collection(milvus, settings.milvus_collection, settings.embedding_dim)
    milvus.close()
    log.info("milvus collection %s ready", settings.milvus_collection)


if __name__ == "__main__":
    main()
