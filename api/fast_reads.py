"""`GET /v1/courses/{id}` answered from the course cache before routing.

It is the hottest read, and once a course is cached, what is left of it is FastAPI's routing and
dependency solving (most of its CPU, profiled). When the access decision the route would make
(`shared.access.decision.decide`, the same function) admits the caller from what this process
knows — the key (cached, not refused, not expired) or an anonymous public read, the `read`
scope, the rate limit decided locally — and the course is cached, the answer is sent from here,
byte for byte the route's. Anything else (an unknown key, a refusal to make, a rate limit that
needs the shared counters, a cache miss) goes on to the route, which does the full work and
fills the caches.

A read carrying a consistency token (and nothing else in its query) is answered here too when
this process has seen that token satisfied and the cached answer is at least its version (the
route's own rule); any other token, or a bad one, is the route's to wait for or refuse.
"""

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import KeyCache
from api.observability import ROUTE_TEMPLATE
from shared.access.decision import bearer_token, decide
from shared.access.keys import Scope as KeyScope
from shared.access.service import Caller
from shared.catalog.cache import CachedCourses
from shared.errors import InvalidRequest
from shared.ledger.consistency import ConsistencyWaiter, read_token
from shared.settings import Settings

PREFIX = "/v1/courses/"
TEMPLATE = "/v1/courses/{course_id}"


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")  # as Starlette's `request.headers` decodes it
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
    min_version = None
    if query := scope.get("query_string"):
        min_version = _satisfied_token(query, state)
        if min_version is None:
            return None
    courses: CachedCourses = state.cached_courses
    body = courses.cache.get(course_id)  # only the route fills it: ids it serves
    if body is None:
        return None
    if min_version is not None and int(json.loads(body)["version"]) < min_version:
        return None
    authorization = _authorization(scope)
    token = bearer_token(authorization)
    keys: KeyCache = state.key_cache
    known = keys.get(token) if token is not None else None
    client = scope.get("client")
    address = client[0] if client else None
    # A refusal, or anything needing a query, is the route's to make (it counts refusals).
    decision = decide(
        authorization,
        token,
        known,
        KeyScope.read,
        state.settings,
        state.rate_limiter,
        address,
        count_refusal=False,
    )
    return body if isinstance(decision, Caller) else None


def _satisfied_token(query: bytes, state: Any) -> int | None:
    """The version of the query's consistency token when it is the query's only parameter
    and this process has seen it satisfied; else None (the route decides)."""
    try:
        params = parse_qsl(query.decode("latin-1"), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    if len(params) != 1 or params[0][0] != "consistency":
        return None
    settings: Settings = state.settings
    try:
        seq = read_token(settings.consistency_token_key.get_secret_value().encode(), params[0][1])
    except InvalidRequest:
        return None
    waiter: ConsistencyWaiter = state.consistency
    return seq if waiter.known_satisfied(seq) else None


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
