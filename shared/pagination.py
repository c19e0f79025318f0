"""Opaque cursors: clients pass back what we gave them; we never promise their format."""

import base64
import binascii
import json
from typing import Any, TypeVar

from shared.errors import ErrorDetail, InvalidRequest

T = TypeVar("T")


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, key: str, kind: type[T]) -> T | None:
    """The position stored under `key`, checked to be a `kind`; None when there is no cursor."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(position, dict) or not isinstance(position.get(key), kind):
            raise ValueError(cursor)
        return position[key]
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidRequest(
            "The cursor is not one this API returned.",
            [ErrorDetail(["query", "cursor"], "invalid_cursor", "use next_cursor as returned")],
        ) from None
