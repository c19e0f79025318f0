"""One handler per family of error, all rendering the same body:
{"error": {"code", "message", "details": [{"loc", "code", "message"}]}}
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymilvus.exceptions import MilvusException
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.errors import CoursewiseError, ErrorDetail

log = logging.getLogger(__name__)


class MethodNotAllowed(StarletteHTTPException):
    """A 405 with an exact `Allow`: for a path that another route's template also matches (the
    methods of every route matching it would be wrong)."""

    def __init__(self, allow: str) -> None:
        super().__init__(status_code=405, headers={"Allow": allow})


class ErrorDetailBody(BaseModel):
    loc: list[str | int]
    code: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetailBody]


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": [detail.as_dict() for detail in details or []],
        }
    }
    return JSONResponse(status_code=status_code, content=body, headers=headers)


def pydantic_details(errors: Any, prefix: tuple[str | int, ...] = ()) -> list[ErrorDetail]:
    return [
        ErrorDetail(loc=[*prefix, *error["loc"]], code=error["type"], message=error["msg"])
        for error in errors
    ]


_HTTP_CODES = {
    400: "malformed_body",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}
_HTTP_LOCS = {400: "body", 404: "path", 405: "method", 413: "body"}


def _allowed_methods(request: Request) -> set[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= set(route_methods)
    return methods


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CoursewiseError)
    async def _domain(_: Request, exc: CoursewiseError) -> JSONResponse:
        return error_response(
            exc.status_code, exc.code, exc.message, exc.details, headers=exc.headers()
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = pydantic_details(exc.errors())
        return error_response(
            422, "validation_error", f"The request has {len(details)} invalid value(s).", details
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        loc: list[str | int] = [_HTTP_LOCS.get(exc.status_code, "request")]
        details = [ErrorDetail(loc, code, str(exc.detail))]
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and not isinstance(exc, MethodNotAllowed):
            # Starlette names only the first route that matched the path; list them all.
            headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
        return error_response(exc.status_code, code, str(exc.detail), details, headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return error_response(
            503,
            "dependency_unavailable",
            "PostgreSQL is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(MilvusException)
    async def _milvus(_: Request, exc: MilvusException) -> JSONResponse:
        log.warning("milvus unavailable: %s", exc)
        return error_response(
            503,
            "dependency_unavailable",
            "The vector index is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "Internal server error.")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body could not be read (e.g. not UTF-8)"},
    401: {
        "model": ErrorResponse,
        "description": "No API key, or an unknown, revoked or expired one",
    },
    403: {"model": ErrorResponse, "description": "The API key lacks the scope this needs"},
    413: {"model": ErrorResponse, "description": "The request body is too large"},
    422: {"model": ErrorResponse, "description": "Invalid input: every problem, with its location"},
    429: {
        "model": ErrorResponse,
        "description": "Rate limit or pending-task cap hit; see Retry-After",
    },
    503: {"model": ErrorResponse, "description": "A dependency is unavailable; retry later"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such resource"}
}
