"""API key management (admin scope). The CLI (`coursewise keys`) does the same directly in the
database, which is how the first admin key is made."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.auth import AdminDep
from api.deps import SessionDep
from api.errors import ERROR_RESPONSES, NOT_FOUND
from shared.access.repository import ApiKeyRepository
from shared.access.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyList, ApiKeyOut, key_out
from shared.access.service import create_key, revoke_key

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"])


@router.post(
    "",
    summary="Create an API key (its secret is shown only in this response)",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=ERROR_RESPONSES,
)
async def create_api_key(_: AdminDep, body: ApiKeyIn, session: SessionDep) -> ApiKeyCreated:
    key, secret = await create_key(
        session,
        name=body.name,
        owner=body.owner or body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        rate_limit_per_minute=body.rate_limit_per_minute,
    )
    return ApiKeyCreated(**key_out(key).model_dump(), key=secret)


@router.get(
    "",
    summary="API keys (never their secrets)",
    response_model=ApiKeyList,
    responses=ERROR_RESPONSES,
)
async def list_api_keys(
    _: AdminDep, session: SessionDep, include_revoked: Annotated[bool, Query()] = False
) -> ApiKeyList:
    keys = await ApiKeyRepository(session).all(include_revoked=include_revoked)
    return ApiKeyList(items=[key_out(key) for key in keys])


@router.delete(
    "/{key_id}",
    summary="Revoke an API key (takes effect within `api_key_cache_s` seconds)",
    response_model=ApiKeyOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def revoke_api_key(
    _: AdminDep, key_id: Annotated[uuid.UUID, Path()], session: SessionDep
) -> ApiKeyOut:
    return key_out(await revoke_key(session, key_id))
