"""`GET /v1/courses/{id}` answered from the course cache before routing.

It is the hottest read, and once a course is cached, what is left of it is FastAPI's routing and
dependency solving (most of its CPU, profiled). When everything the route checks is already
known in this process — the key (cached, not refused, not expired), its `read` scope, the rate
limit decided locally, the course (cached) — the answer is sent from here, byte for byte the
route's. Anything else (no key or an unknown one, public reads, a refusal to make, a cache miss)
goes on to the route, which does the full work and fills the caches. Both paths use the same
caches and checks; nothing here decides differently from the route.
"""

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import KeyCache
from api.observability import ROUTE_TEMPLATE
from shared.access.keys import Scope as KeyScope
from shared.access.service import RateLimiter, utcnow
from shared.catalog.cache import CachedCourses

PREFIX = "/v1/courses/"
TEMPLATE = "/v1/courses/{course_id}"


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token if kind.lower() == "bearer" and token else None
    return None


def cached_answer(scope: Scope) -> bytes | None:
    """The route's answer if this process can give it without a query, else None."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    path: str = scope["path"]
    course_id = path[len(PREFIX) :]
    if not path.startswith(PREFIX) or not course_id or "/" in course_id:
        return None
    state = scope["app"].state
    courses: CachedCourses = state.cached_courses
    body = courses.cache.get(course_id)  # only the route fills it: ids it serves
    token = _bearer_token(scope) if body is not None else None
    if token is None:
        return None
    keys: KeyCache = state.key_cache
    checked = keys.get(token)
    if checked is None:
        return None
    caller, expires_at = checked
    if isinstance(caller, str) or not caller.has(KeyScope.read):
        return None
    if expires_at is not None and expires_at <= utcnow():
        return None
    if state.settings.rate_limit_enabled:
        limiter: RateLimiter = state.rate_limiter
        if limiter.decide_locally(caller, time.time(), count_refusal=False) != 0:
            return None
    return body


class CourseByIdFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = cached_answer(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        scope[ROUTE_TEMPLATE] = TEMPLATE
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
