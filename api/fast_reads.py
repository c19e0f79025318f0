"""`GET /v1/courses/{id}` answered from the course cache before routing.

It is the hottest read, and once a course is cached, what is left of it is FastAPI's routing and
dependency solving (most of its CPU, profiled). When the access decision the route would make
(`shared.access.decision.decide`, the same function) admits the caller from what this process
knows — the key (cached, not refused, not expired) or an anonymous public read, the `read`
scope, the rate limit decided locally — and the course is cached, the answer is sent from here,
byte for byte the route's. Anything else (an unknown key, a refusal to make, a rate limit that
needs the shared counters, a cache miss) goes on to the route, which does the full work and
fills the caches.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import KeyCache
from api.observability import ROUTE_TEMPLATE
from shared.access.decision import bearer_token, decide
from shared.access.keys import Scope as KeyScope
from shared.access.service import Caller
from shared.catalog.cache import CachedCourses

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
    if scope.get("query_string"):  # e.g. a consistency token: the route waits for it
        return None
    path: str = scope["path"]
    course_id = path[len(PREFIX) :]
    if not path.startswith(PREFIX) or not course_id or "/" in course_id:
        return None
    state = scope["app"].state
    courses: CachedCourses = state.cached_courses
    body = courses.cache.get(course_id)  # only the route fills it: ids it serves
    if body is None:
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
