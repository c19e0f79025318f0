import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from shared.access.keys import Scope
from shared.access.models import ApiKey

Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^\S.*$")
]


class ApiKeyIn(BaseModel):
    name: Label = Field(description="what the key is for, e.g. `acme catalogue sync`")
    owner: Label | None = Field(
        default=None,
        description="who the key belongs to; keys of one owner see each other's tasks "
        "(defaults to the name)",
    )
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)]
    expires_at: AwareDatetime | None = Field(default=None, description="never, if absent")
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description="the default from settings, if absent"
    )


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    owner: str
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    scopes: list[Scope]
    rate_limit_per_minute: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the secret: shown only now, stored only as a hash")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        owner=key.owner,
        prefix=key.prefix,
        scopes=[Scope(scope) for scope in key.scopes],
        rate_limit_per_minute=key.rate_limit_per_minute,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )
