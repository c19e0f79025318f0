"""Request body size limit, enforced before a route reads anything into memory."""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from shared.errors import ErrorDetail
from shared.settings import Settings

# Routes that take large uploads and enforce their own (larger) limit while streaming.
BULK_PATHS = frozenset({"/v1/courses/bulk"})


class BodySizeLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _limit(self, path: str) -> int:
        if path in BULK_PATHS:
            return self.settings.bulk_max_body_bytes
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        message = f"The request body is larger than {limit} bytes."
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                detail = ErrorDetail(["header", "content-length"], "payload_too_large", message)
                response = error_response(413, "payload_too_large", message, [detail])
                await response(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            # Bodies sent without a length (chunked) are counted as they arrive.
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > limit:
                    raise HTTPException(413, message)
            return incoming

        await self.app(scope, limited_receive, send)
