"""Parsing a bulk upload (a JSON array, or NDJSON for larger files) into validated courses,
collecting every problem with its location before anything is queued."""

import json
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from api.errors import pydantic_details
from shared.catalog.schemas import CourseIn
from shared.errors import ErrorDetail, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from shared.settings import Settings

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_json(body: bytes) -> list[Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, deep nesting
        raise InvalidRequest(
            "The body is not valid JSON.",
            [ErrorDetail(["body"], "json_invalid", str(exc))],
        ) from None
    if not isinstance(data, list):
        raise InvalidRequest(
            "The body must be a JSON array of courses.",
            [ErrorDetail(["body"], "list_type", "expected a JSON array")],
        )
    return data


def _decode_ndjson(body: bytes) -> tuple[list[Any], list[ErrorDetail]]:
    items: list[Any] = []
    problems: list[ErrorDetail] = []
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            "The body is not UTF-8.", [ErrorDetail(["body"], "utf8_invalid", str(exc))]
        ) from None
    # Only \n ends a record: JSON strings may hold U+2028 and friends, which splitlines() splits.
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            problems.append(ErrorDetail(["body", len(items)], "json_invalid", str(exc)))
            items.append(None)
    return items, problems


def _too_large(max_bytes: int) -> PayloadTooLarge:
    message = f"The body is larger than {max_bytes} bytes."
    return PayloadTooLarge(message, [ErrorDetail(["body"], "payload_too_large", message)])


def _too_many(count: int, limit: int, media: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"A {media} bulk request holds at most {limit} courses; this one has {count}.",
        [ErrorDetail(["body"], "too_many_items", f"at most {limit} items")],
    )


async def parse_bulk(request: Request, settings: Settings) -> list[CourseIn]:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    body = await read_body(request, settings.bulk_max_body_bytes)
    problems: list[ErrorDetail] = []
    if media in NDJSON_TYPES:
        raw, problems = _decode_ndjson(body)
        limit = settings.bulk_max_items_ndjson
    elif media in ("application/json", ""):
        raw = _decode_json(body)
        limit = settings.bulk_max_items_json
    else:
        raise UnsupportedMediaType(
            f"Send application/json (an array) or application/x-ndjson, not {media!r}.",
            [ErrorDetail(["header", "content-type"], "unsupported_media_type", media)],
        )
    if len(raw) > limit:
        raise _too_many(len(raw), limit, media)
    if not raw:
        raise InvalidRequest(
            "The bulk request holds no course.",
            [ErrorDetail(["body"], "too_short", "at least one course")],
        )

    courses: list[CourseIn] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        if item is None and any(p.loc == ["body", index] for p in problems):
            continue
        raw_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(raw_id, str):
            raw_id = raw_id.strip()  # as the contract will strip it
            if raw_id in first_seen:
                problems.append(
                    ErrorDetail(
                        ["body", index, "id"],
                        "duplicate_id",
                        f"id {raw_id!r} already appears at index {first_seen[raw_id]}",
                    )
                )
            else:
                first_seen[raw_id] = index
        try:
            courses.append(CourseIn.model_validate(item))
        except ValidationError as exc:
            problems.extend(pydantic_details(exc.errors(), ("body", index)))
    if problems:
        problems.sort(
            key=lambda p: p.loc[1] if len(p.loc) > 1 and isinstance(p.loc[1], int) else -1
        )
        shown = problems[: settings.max_errors_reported]
        raise InvalidRequest(
            f"{len(problems)} problem(s) in the bulk request; nothing was queued.", shown
        )
    return courses
