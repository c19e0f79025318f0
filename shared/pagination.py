"""Opaque cursors: clients pass back what we gave them; we never promise their format."""

import base64
import binascii
import json
from typing import Any

from shared.errors import ErrorDetail, InvalidRequest


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, required_key: str) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(position, dict) or required_key not in position:
            raise ValueError(cursor)
        return position
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            "The cursor is not one this API returned.",
            [ErrorDetail(["query", "cursor"], "invalid_cursor", "use next_cursor as returned")],
        ) from None
