"""Bulk bodies (a JSON array or NDJSON): what is accepted, and how every problem is reported."""

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from api.bulk import parse_bulk
from api.errors import error_response
from shared.catalog.schemas import CourseIn
from shared.errors import (
    CoursewiseError,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from shared.settings import Settings

SETTINGS = Settings(bulk_max_items_json=3, bulk_max_items_ndjson=5, bulk_max_body_bytes=4096)
JSON = "application/json"
NDJSON = "application/x-ndjson"


class FakeRequest:
    """Just what parse_bulk reads from a Starlette request."""

    def __init__(
        self,
        body: bytes,
        content_type: str | None = JSON,
        *,
        chunk_size: int = 512,
        content_length: bool = True,
    ) -> None:
        self.headers: dict[str, str] = {}
        if content_type is not None:
            self.headers["content-type"] = content_type
        if content_length:
            self.headers["content-length"] = str(len(body))
        self._chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def course(n: int, **changes: Any) -> dict[str, Any]:
    return {"id": f"c{n}", "title": f"Course {n}", "description": "About it.", **changes}


def as_json(items: Any) -> bytes:
    return json.dumps(items).encode()


def as_ndjson(items: Iterable[Any]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in items).encode()


def parse(body: bytes, content_type: str | None = JSON, **kwargs: Any) -> list[CourseIn]:
    request = FakeRequest(body, content_type, **kwargs)
    return asyncio.run(parse_bulk(request, SETTINGS))  # type: ignore[arg-type]


def rejected(
    body: bytes,
    content_type: str | None = JSON,
    error: type[CoursewiseError] = InvalidRequest,
    **kwargs: Any,
) -> CoursewiseError:
    with pytest.raises(error) as caught:
        parse(body, content_type, **kwargs)
    return caught.value


def located(exc: CoursewiseError) -> list[tuple[list[str | int], str]]:
    return [(detail.loc, detail.code) for detail in exc.details]


# --- accepted bodies -----------------------------------------------------------------------


def test_json_array() -> None:
    courses = parse(as_json([course(1), course(2, skills=["SQL", "sql"]), course(3)]))
    assert [c.id for c in courses] == ["c1", "c2", "c3"]
    assert courses[1].skills == ["sql"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "Application/JSON",
        None,  # no header: JSON is assumed
    ],
)
def test_json_content_type_variants(content_type: str | None) -> None:
    assert len(parse(as_json([course(1)]), content_type)) == 1


def test_ndjson_skips_blank_lines() -> None:
    body = (
        b"\n"
        + json.dumps(course(1)).encode()
        + b"\n\n   \n"
        + json.dumps(course(2)).encode()
        + b"\r\n"
        + json.dumps(course(3)).encode()  # no final newline
    )
    assert [c.id for c in parse(body, NDJSON)] == ["c1", "c2", "c3"]


@pytest.mark.parametrize(
    "content_type", ["application/x-ndjson", "application/jsonl", "application/ndjson"]
)
def test_ndjson_media_types(content_type: str) -> None:
    assert len(parse(as_ndjson([course(1), course(2)]), content_type)) == 2


def test_ndjson_allows_more_items_than_json() -> None:
    items = [course(n) for n in range(5)]
    assert len(parse(as_ndjson(items), NDJSON)) == 5
    exc = rejected(as_json(items), JSON, PayloadTooLarge)
    assert located(exc) == [(["body"], "too_many_items")]


def test_body_streamed_in_small_chunks_is_reassembled() -> None:
    body = as_json([course(1), course(2)])
    assert len(parse(body, chunk_size=7)) == 2


# --- every problem, with its index ---------------------------------------------------------


def test_invalid_items_report_every_problem_with_index() -> None:
    exc = rejected(
        as_json(
            [
                course(1, rating=9),
                course(2),
                {"id": "bad id", "title": "", "description": "x", "colour": "red"},
            ]
        )
    )
    assert exc.status_code == 422
    assert exc.code == "validation_error"
    assert located(exc) == [
        (["body", 0, "rating"], "less_than_equal"),
        (["body", 2, "id"], "string_pattern_mismatch"),
        (["body", 2, "title"], "string_too_short"),
        (["body", 2, "colour"], "extra_forbidden"),
    ]
    assert exc.message.startswith("4 problem(s)")


def test_missing_field_and_model_level_problem_locations() -> None:
    exc = rejected(as_json([{"id": "c1", "title": "t"}, course(2, price=5)]))
    assert located(exc) == [
        (["body", 0, "description"], "missing"),
        (["body", 1], "value_error"),
    ]


def test_item_that_is_not_an_object() -> None:
    exc = rejected(as_json([course(1), "just a string"]))
    assert located(exc) == [(["body", 1], "model_type")]


def test_ndjson_item_problems_are_reported_by_item_index() -> None:
    body = as_ndjson([course(1), course(2, level="guru"), course(3, price=-1)])
    exc = rejected(body, NDJSON)
    assert located(exc) == [
        (["body", 1, "level"], "enum"),
        (["body", 2, "price"], "greater_than_equal"),
    ]


def test_duplicate_id_is_reported_at_the_later_index() -> None:
    exc = rejected(as_json([course(1), course(2), course(1, title="Again")]))
    assert located(exc) == [(["body", 2, "id"], "duplicate_id")]
    assert "index 0" in exc.details[0].message


def test_duplicate_ids_in_ndjson_and_mixed_with_other_problems() -> None:
    body = as_ndjson([course(1), course(2, rating=-1), course(2), course(1), course(3)])
    exc = rejected(body, NDJSON)
    assert located(exc) == [
        (["body", 1, "rating"], "greater_than_equal"),
        (["body", 2, "id"], "duplicate_id"),
        (["body", 3, "id"], "duplicate_id"),
    ]


def test_ids_equal_after_normalisation_are_duplicates() -> None:
    exc = rejected(as_json([course(1), course(1, id=" c1 ")]))
    assert located(exc) == [(["body", 1, "id"], "duplicate_id")]


def test_broken_ndjson_line_is_json_invalid_at_its_index() -> None:
    body = (
        json.dumps(course(1)).encode()
        + b"\n"
        + b'{"id": "c2", "title": \n'
        + json.dumps(course(3, rating=7)).encode()
        + b"\n"
    )
    exc = rejected(body, NDJSON)
    assert located(exc) == [
        (["body", 1], "json_invalid"),
        (["body", 2, "rating"], "less_than_equal"),
    ]


def test_broken_ndjson_line_index_counts_items_not_blank_lines() -> None:
    body = b"\n\n" + json.dumps(course(1)).encode() + b"\n\n{oops\n"
    exc = rejected(body, NDJSON)
    assert located(exc) == [(["body", 1], "json_invalid")]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"], ids=["2028", "2029", "85"])
def test_ndjson_splits_on_newline_only(separator: str) -> None:
    line = json.dumps(course(1, description=f"one{separator}two"), ensure_ascii=False)
    body = (line + "\n" + json.dumps(course(2)) + "\n").encode()
    courses = parse(body, NDJSON)
    assert [c.id for c in courses] == ["c1", "c2"]
    assert courses[0].description == f"one{separator}two"


def test_non_utf8_ndjson_is_rejected() -> None:
    exc = rejected(b'{"id": "\xff"}\n', NDJSON)
    assert located(exc) == [(["body"], "utf8_invalid")]


def test_reported_problems_are_capped() -> None:
    settings = Settings(bulk_max_items_json=3, bulk_max_body_bytes=4096, max_errors_reported=2)
    request = FakeRequest(as_json([{"x": 1}, {"y": 2}, {"z": 3}]))
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(parse_bulk(request, settings))  # type: ignore[arg-type]
    assert len(caught.value.details) == 2
    assert caught.value.message.startswith("12 problem(s)")  # 3 missing + 1 extra, per item


# --- whole-body problems -------------------------------------------------------------------


def test_too_many_items_json() -> None:
    exc = rejected(as_json([course(n) for n in range(4)]), JSON, PayloadTooLarge)
    assert exc.status_code == 413
    assert exc.code == "payload_too_large"
    assert located(exc) == [(["body"], "too_many_items")]


def test_too_many_items_ndjson() -> None:
    exc = rejected(as_ndjson([course(n) for n in range(6)]), NDJSON, PayloadTooLarge)
    assert (exc.status_code, exc.code) == (413, "payload_too_large")
    assert located(exc) == [(["body"], "too_many_items")]


def test_too_many_items_wins_over_item_problems() -> None:
    exc = rejected(as_json([{}, {}, {}, {}]), JSON, PayloadTooLarge)
    assert located(exc) == [(["body"], "too_many_items")]


def test_body_over_size_by_declared_length() -> None:
    body = as_json([course(1, description="x" * 5000)])
    exc = rejected(body, JSON, PayloadTooLarge)
    assert (exc.status_code, exc.code) == (413, "payload_too_large")


def test_body_over_size_while_streaming_without_length() -> None:
    body = as_json([course(1, description="x" * 5000)])
    exc = rejected(body, JSON, PayloadTooLarge, content_length=False)
    assert (exc.status_code, exc.code) == (413, "payload_too_large")


def test_body_at_size_limit_is_read() -> None:
    item = course(1)
    padding = 4096 - len(as_json([item]))
    body = as_json([item]) + b" " * padding
    assert len(body) == 4096
    assert len(parse(body, content_length=False)) == 1


def test_understated_content_length_does_not_bypass_limit() -> None:
    body = as_json([course(1, description="x" * 5000)])
    request = FakeRequest(body)
    request.headers["content-length"] = "10"
    with pytest.raises(PayloadTooLarge):
        asyncio.run(parse_bulk(request, SETTINGS))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [b'{"id": "c1"}', b'"courses"', b"42", b"null"],
    ids=["object", "string", "number", "null"],
)
def test_json_body_that_is_not_an_array(body: bytes) -> None:
    exc = rejected(body)
    assert exc.status_code == 422
    assert located(exc) == [(["body"], "list_type")]


@pytest.mark.parametrize(
    "body", [b"", b"[", b"[{]", b"\xff\xfe["], ids=["empty", "open", "bad", "bytes"]
)
def test_json_body_that_is_not_json(body: bytes) -> None:
    exc = rejected(body)
    assert exc.status_code == 422
    assert located(exc) == [(["body"], "json_invalid")]


@pytest.mark.parametrize("content_type", [JSON, NDJSON])
def test_deeply_nested_body_is_json_invalid(content_type: str) -> None:
    exc = rejected(b"[" * 4000, content_type)
    assert located(exc) == [(["body"] if content_type == JSON else ["body", 0], "json_invalid")]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x"]
)
def test_wrong_content_type(content_type: str) -> None:
    exc = rejected(as_json([course(1)]), content_type, UnsupportedMediaType)
    assert (exc.status_code, exc.code) == (415, "unsupported_media_type")
    assert located(exc) == [(["header", "content-type"], "unsupported_media_type")]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"[]", JSON), (b"", NDJSON), (b"\n \n\n", NDJSON)],
    ids=["json", "ndjson-empty", "ndjson-blank"],
)
def test_no_course_at_all(body: bytes, content_type: str) -> None:
    exc = rejected(body, content_type)
    assert exc.status_code == 422
    assert located(exc) == [(["body"], "too_short")]


# --- what the client reads -----------------------------------------------------------------


def test_problems_render_in_the_documented_error_body() -> None:
    exc = rejected(as_json([course(1), course(1, rating=6)]))
    response = error_response(exc.status_code, exc.code, exc.message, exc.details)
    assert response.status_code == 422
    assert json.loads(bytes(response.body)) == {
        "error": {
            "code": "validation_error",
            "message": exc.message,
            "details": [
                {
                    "loc": ["body", 1, "id"],
                    "code": "duplicate_id",
                    "message": exc.details[0].message,
                },
                {
                    "loc": ["body", 1, "rating"],
                    "code": "less_than_equal",
                    "message": exc.details[1].message,
                },
            ],
        }
    }


def test_too_many_items_renders_as_413() -> None:
    exc = rejected(as_json([course(n) for n in range(4)]), JSON, PayloadTooLarge)
    body = json.loads(
        bytes(error_response(exc.status_code, exc.code, exc.message, exc.details).body)
    )
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["details"][0]["code"] == "too_many_items"
