import uuid
from datetime import datetime
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from shared.access.keys import Scope
from shared.access.models import ApiKey

Label = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=100,
        pattern=r"^[^\u0000-\u001f\u007f]+$",  # printable: it is shown in listings and logs
    ),
]


def _text_only(value: object) -> object:
    # A bare number would be read as a Unix time; the contract is an RFC 3339 string.
    if not isinstance(value, str | datetime):
        raise ValueError("expected an RFC 3339 date-time string")
    return value


def _json_number(value: object) -> object:
    # JSON `true` and "5" are not numbers, though Python would read them as 1 and 5.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    return value


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Label = Field(description="what the key is for, e.g. `acme catalogue sync`")
    owner: Label | None = Field(
        default=None,
        description="who the key belongs to; keys of one owner see each other's tasks "
        "(defaults to the name)",
    )
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)]
    expires_at: Annotated[AwareDatetime, BeforeValidator(_text_only)] | None = Field(
        default=None, description="never, if absent"
    )
    rate_limit_per_minute: (
        Annotated[int, Ge(1), Le(1_000_000), BeforeValidator(_json_number)] | None
    ) = Field(default=None, description="the default from settings, if absent")


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
