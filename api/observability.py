"""Per-request observability: a request id (the caller's valid X-Request-ID, or a new one) that
every log line of the request carries and the response returns, and the latency histogram
labelled by route template (never the raw path, so the label set stays bounded)."""

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import REQUEST_ID_HEADER, new_request_id, request_id_var, valid_request_id
from shared.metrics import observe_request

_HEADER = REQUEST_ID_HEADER.lower().encode()


# Set by a middleware that answers before routing (api/fast_reads.py): the template it serves.
ROUTE_TEMPLATE = "coursewise.route_template"


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None) or scope.get(ROUTE_TEMPLATE)
    return path if isinstance(path, str) else "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == _HEADER),
            None,
        )
        request_id = valid_request_id(supplied) or new_request_id()
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            observe_request(
                scope.get("method", ""),
                route_template(scope),
                status,
                time.perf_counter() - started,
            )
            request_id_var.reset(token)
