"""Opaque cursors: what we hand out comes back intact; anything else is a 422 on the cursor."""

import base64
import json

import pytest

from shared.errors import InvalidRequest
from shared.pagination import decode_cursor, encode_cursor


@pytest.mark.parametrize(
    "position",
    [
        {"after": "coursera:machine-learning"},
        {"offset": 40},
        {"before": 123456789},
        {"after": "ünïcode/and=padding?"},
        {"after": "x" * 301},
    ],
)
def test_round_trip(position: dict[str, str | int]) -> None:
    key, value = next(iter(position.items()))
    cursor = encode_cursor(position)
    assert decode_cursor(cursor, key=key, kind=type(value)) == value


def test_cursor_is_url_safe() -> None:
    cursor = encode_cursor({"after": "???>>>~~~" * 10})
    assert cursor.isascii()
    assert not set(cursor) & set("+/=&? ")


def test_no_cursor_means_first_page() -> None:
    assert decode_cursor(None, key="after", kind=str) is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "!!!!",
        "%%%",
        "a",
        "abc=",
        _b64(b"not json"),
        _b64(b"\xff\xfe\x00"),
        _b64(b"[1, 2]"),
        _b64(b'"after"'),
        _b64(b"null"),
        _b64(json.dumps({"offset": 10}).encode()),  # valid, but for another endpoint
        encode_cursor({"offset": 10})[:-3],  # truncated
        encode_cursor({"after": 42}),  # right key, wrong type
        _b64(b"[" * 5000),  # deep nesting
    ],
)
def test_garbage_cursor_is_rejected_on_the_cursor(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_cursor(cursor, key="after", kind=str)
    error = caught.value
    assert error.status_code == 422
    assert error.code == "validation_error"
    assert [detail.loc for detail in error.details] == [["query", "cursor"]]
    assert [detail.code for detail in error.details] == ["invalid_cursor"]
