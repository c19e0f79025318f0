"""Liveness (the process answers) and readiness (every store it needs answers)."""

import logging
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import CeleryDep, SettingsDep
from api.errors import error_response
from shared.errors import ErrorDetail
from shared.messaging import drop, publishing_connection

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _ping_broker(celery: Any, timeout: float) -> None:
    # Dropped, not closed: a graceful close waits for the broker with no bound.
    connection = publishing_connection(celery, confirm=False)
    try:
        connection.ensure_connection(max_retries=1, timeout=timeout)
    finally:
        drop(connection)


@router.get(
    "/readyz",
    summary="PostgreSQL, RabbitMQ and Milvus are reachable",
    responses={503: {"description": "At least one dependency is unreachable"}},
)
async def readyz(request: Request, celery: CeleryDep, settings: SettingsDep) -> JSONResponse:
    checks: dict[str, str] = {}
    state = request.app.state

    async def postgres() -> None:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def rabbitmq() -> None:
        await anyio.to_thread.run_sync(_ping_broker, celery, settings.publish_timeout_s)

    async def milvus() -> None:
        if not await state.milvus.has_collection(settings.milvus_collection):
            raise RuntimeError(f"collection {settings.milvus_collection!r} is missing")

    for name, check in (("postgres", postgres), ("rabbitmq", rabbitmq), ("milvus", milvus)):
        try:
            with anyio.fail_after(settings.publish_timeout_s + 1):
                await check()
            checks[name] = "ok"
        except Exception as exc:
            log.warning("readiness: %s unreachable: %r", name, exc)
            checks[name] = f"unreachable: {type(exc).__name__}"
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        response = error_response(
            503,
            "not_ready",
            f"Unreachable: {', '.join(failing)}.",
            [ErrorDetail([name], "unreachable", checks[name]) for name in failing],
        )
        return response
    return JSONResponse({"status": "ready", "checks": checks})
