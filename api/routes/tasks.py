import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import StreamingResponse

from api.auth import AdminDep, KeyHolderDep, WriterDep
from api.deps import DispatcherDep, SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES, NOT_FOUND, ErrorResponse, MethodNotAllowed
from shared.access.service import Caller
from shared.ledger.repository import TaskRepository
from shared.ledger.schemas import (
    CancelFilter,
    CancelResult,
    TaskAccepted,
    TaskOut,
    TaskPage,
    TaskStatus,
    TaskType,
)
from shared.ledger.service import cancel_task, cancel_tasks, get_task, task_changes, task_out
from shared.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


def _visible_owner(caller: Caller) -> str | None:
    """Admins see every task; any other key sees its owner's tasks only."""
    return None if caller.is_admin else caller.owner


@router.api_route(
    "/cancel",
    methods=["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
async def cancel_other_methods() -> None:
    # Otherwise GET /v1/tasks/cancel is read as a task id that is not one (422), not a 405.
    raise MethodNotAllowed("POST")


@router.get(
    "/{task_id}",
    summary="One task: status, counts, per-item errors, times",
    response_model=TaskOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def read_task(
    caller: KeyHolderDep,
    task_id: Annotated[uuid.UUID, Path()],
    session: SessionDep,
    settings: SettingsDep,
) -> TaskOut:
    return await get_task(TaskRepository(session), task_id, _visible_owner(caller), settings)


@router.get(
    "/{task_id}/events",
    summary="The task's progress as server-sent events, ending with its final state",
    description="`text/event-stream`: an `event: task` with the task (as `GET /v1/tasks/{id}`) "
    "now and at every change of its status or counts; the stream closes after the event of its "
    "final state (succeeded, failed or cancelled). Comments keep an idle stream alive.",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One event per change, the last one the final state",
            "content": {
                "text/event-stream": {
                    # One event (OpenAPI 3.1 has no itemSchema: `schema` describes an event).
                    "schema": {
                        "type": "object",
                        "required": ["event", "data"],
                        "properties": {
                            "event": {"type": "string", "enum": ["task"]},
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "description": "the task, as GET /v1/tasks/{task_id}",
                            },
                        },
                    }
                }
            },
        },
        **ERROR_RESPONSES,
        **NOT_FOUND,
    },
)
async def task_events(
    caller: KeyHolderDep,
    task_id: Annotated[uuid.UUID, Path()],
    request: Request,
    settings: SettingsDep,
) -> StreamingResponse:
    changes = task_changes(
        request.app.state.sessionmaker, task_id, _visible_owner(caller), settings
    )
    # The first look before answering: an unknown task is a 404, not an empty stream.
    first = await anext(changes)

    async def stream() -> AsyncIterator[bytes]:
        task = first
        try:
            while True:
                if task is None:
                    yield b": keep-alive\n\n"
                else:
                    yield b"event: task\ndata: " + task.model_dump_json().encode() + b"\n\n"
                task = await anext(changes)
        except StopAsyncIteration:
            return
        finally:
            await changes.aclose()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.post(
    "/{task_id}/retry",
    summary="Queue a failed task again",
    status_code=202,
    response_model=TaskAccepted,
    responses={
        **ERROR_RESPONSES,
        **NOT_FOUND,
        409: {"model": ErrorResponse, "description": "The task is not failed"},
    },
)
async def retry_task(
    _: AdminDep, task_id: Annotated[uuid.UUID, Path()], dispatcher: DispatcherDep
) -> TaskAccepted:
    return await dispatcher.retry(task_id)


@router.post(
    "/cancel",
    summary="Cancel the queued tasks a filter matches (none matching: an empty result)",
    response_model=CancelResult,
    responses=ERROR_RESPONSES,
)
async def cancel_matching(
    caller: WriterDep, matching: Annotated[CancelFilter, Body()], session: SessionDep
) -> CancelResult:
    return await cancel_tasks(TaskRepository(session), matching, _visible_owner(caller))


@router.post(
    "/{task_id}/cancel",
    summary="Cancel a queued task: it is never applied, even if its message is delivered later",
    response_model=TaskOut,
    responses={
        **ERROR_RESPONSES,
        **NOT_FOUND,
        409: {"model": ErrorResponse, "description": "The task is not queued (its state says)"},
    },
)
async def cancel_one(
    caller: WriterDep, task_id: Annotated[uuid.UUID, Path()], session: SessionDep
) -> TaskOut:
    return await cancel_task(TaskRepository(session), task_id, _visible_owner(caller))


@router.get(
    "",
    summary="Tasks, newest first",
    response_model=TaskPage,
    responses=ERROR_RESPONSES,
)
async def list_tasks(
    caller: KeyHolderDep,
    session: SessionDep,
    status: Annotated[list[TaskStatus] | None, Query(description="repeat to match any")] = None,
    type: Annotated[list[TaskType] | None, Query(description="repeat to match any")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> TaskPage:
    before = decode_cursor(cursor, key="before", kind=int)
    rows = await TaskRepository(session).page(
        statuses=[s.value for s in status or []],
        types=[t.value for t in type or []],
        owner=_visible_owner(caller),
        before_seq=before,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(
        items=[task_out(row) for row in rows],
        next_cursor=encode_cursor({"before": rows[-1].seq}) if more else None,
    )
