"""Webhook endpoints (admins): registered with a secret, told when tasks end; the delivery log."""

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response, status

from api.auth import AdminDep
from api.deps import SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES, NOT_FOUND
from shared.errors import ErrorDetail, InvalidRequest
from shared.pagination import decode_cursor, encode_cursor
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.schemas import DeliveryPage, WebhookIn, WebhookList, WebhookOut
from shared.webhooks.service import WebhookNotFound, deliveries, delivery_out, register, webhook_out


def _cursor_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequest(
            "The cursor is not one this API returned.",
            [ErrorDetail(["query", "cursor"], "invalid_cursor", "use next_cursor as returned")],
        )
    return moment


router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
WebhookIdPath = Annotated[uuid.UUID, Path(description="the webhook's id")]


@router.post(
    "",
    summary="Register an endpoint told (POST, signed) when tasks end",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookOut,
    responses=ERROR_RESPONSES,
)
async def create_webhook(
    _: AdminDep, body: Annotated[WebhookIn, Body()], session: SessionDep, settings: SettingsDep
) -> WebhookOut:
    return await register(WebhookRepository(session), body, settings)


@router.get(
    "", summary="Registered endpoints", response_model=WebhookList, responses=ERROR_RESPONSES
)
async def list_webhooks(_: AdminDep, session: SessionDep) -> WebhookList:
    return WebhookList(items=[webhook_out(w) for w in await WebhookRepository(session).all()])


@router.delete(
    "/{webhook_id}",
    summary="Remove an endpoint (and its delivery log)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def delete_webhook(_: AdminDep, webhook_id: WebhookIdPath, session: SessionDep) -> Response:
    if not await WebhookRepository(session).remove(webhook_id):
        raise WebhookNotFound(str(webhook_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries",
    summary="An endpoint's deliveries, newest first: status, attempts, last answer",
    response_model=DeliveryPage,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def list_deliveries(
    _: AdminDep,
    webhook_id: WebhookIdPath,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> DeliveryPage:
    before = _cursor_time(decode_cursor(cursor, key="before", kind=str))
    rows = await deliveries(WebhookRepository(session), webhook_id, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(
        items=[delivery_out(row) for row in rows],
        next_cursor=encode_cursor({"before": rows[-1].created_at.isoformat()}) if more else None,
    )
