"""The fast path for cached courses and the routed check decide access alike: one table of
cases, run through the whole app twice (fast path on, fast path off), the same answers.

The stores are narrow fakes (a key table, a rate-counter table); the app, its middleware, the
route, the caches and the limiter are the real ones."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api import fast_reads
from api.auth import KeyCache
from api.main import create_app
from shared.access.keys import hash_key
from shared.access.models import ApiKey
from shared.access.service import RateLimiter, caller_for
from shared.catalog.cache import CachedCourses, CourseCache
from shared.settings import Settings

COURSE = b'{"id":"c:1","title":"Bread"}'
NOW = datetime.now(UTC)
# Both runs of a case at the same instant (mid-window), so waits are equal to the second.
FROZEN_S = 1_800_000_030.25


def key(secret: str, scopes: list[str], rate: int = 600, **fields: Any) -> ApiKey:
    return ApiKey(
        id=uuid.uuid4(),
        name=secret,
        owner="o",
        prefix=secret[:9],
        key_hash=hash_key(secret),
        scopes=scopes,
        rate_limit_per_minute=rate,
        expires_at=fields.get("expires_at"),
        revoked_at=fields.get("revoked_at"),
    )


KEYS = {
    k.key_hash: k
    for k in (
        key("cw_reader", ["read"]),
        key("cw_writer", ["write"]),
        key("cw_admin", ["admin"]),
        key("cw_expired", ["read"], expires_at=NOW - timedelta(days=1)),
        key("cw_revoked", ["read"], revoked_at=NOW - timedelta(days=1)),
        key("cw_busy", ["read"], rate=100),
        key("cw_slow", ["read"], rate=2),
    )
}


@dataclass
class Stores:
    """The api_keys and rate_counters tables, as the queries the API sends see them."""

    hits: dict[str, int] = field(default_factory=dict)

    async def scalar(self, statement: Any) -> ApiKey | None:
        return KEYS.get(next(iter(statement.compile().params.values())))

    async def execute(self, _statement: object, params: dict[str, Any]) -> "Stores":
        subject = str(params["subject"])
        self.hits[subject] = self.hits.get(subject, 0) + int(params["hits"])
        self._row = (self.hits[subject], 0)
        return self

    def one(self) -> tuple[int, int]:
        return self._row

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        yield

    async def __aenter__(self) -> "Stores":
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    def __call__(self) -> "Stores":
        return self


def app_for(public_reads: bool) -> FastAPI:
    app = create_app(Settings(public_reads=public_reads, rate_limit_sync_s=60))
    cache = CourseCache(ttl_s=60, max_items=10)
    cache.listening = True
    cache.put("c:1", COURSE, cache.generation)
    stores = Stores()
    app.state.sessionmaker = app.state.read_sessionmaker = stores
    app.state.key_cache = KeyCache(ttl_s=60)
    app.state.rate_limiter = RateLimiter(sync_interval_s=60)
    app.state.cached_courses = CachedCourses(cache, stores)  # type: ignore[arg-type]
    return app


def expire_while_cached(app: FastAPI) -> None:
    """A key checked (cached and counted) while valid, whose expiry has passed since."""
    reader = caller_for(KEYS[hash_key("cw_reader")], 600)
    app.state.key_cache.put("cw_stale", reader, NOW - timedelta(seconds=1))
    limiter: RateLimiter = app.state.rate_limiter
    asyncio.run(limiter.count(app.state.sessionmaker, reader, time.time()))


def writer_seen_before(app: FastAPI) -> None:
    """The writer's key is cached and counted here already (by an earlier write)."""
    writer = caller_for(KEYS[hash_key("cw_writer")], 600)
    app.state.key_cache.put("cw_writer", writer, None)
    limiter: RateLimiter = app.state.rate_limiter
    asyncio.run(limiter.count(app.state.sessionmaker, writer, time.time()))


def over_the_limit(app: FastAPI) -> None:
    """The shared counters already hold more than the busy key's limit this minute."""
    busy = caller_for(KEYS[hash_key("cw_busy")], 600)
    app.state.sessionmaker.hits[busy.rate_subject] = 150


Prepare = Callable[[FastAPI], None]
# name, public reads, Authorization header, how many requests, what the app knew before
CASES: list[tuple[str, bool, str | None, int, Prepare | None]] = [
    ("no key", False, None, 2, None),
    ("no key, public reads", True, None, 3, None),
    ("not bearer", True, "Basic dXNlcjpwdw==", 2, None),
    ("empty bearer", False, "Bearer ", 1, None),
    ("bad key", False, "Bearer cw_nobody", 2, None),
    ("bad key, public reads", True, "Bearer cw_nobody", 2, None),
    ("reader", False, "Bearer cw_reader", 3, None),
    ("reader, lower-case scheme, spaces", False, "bearer   cw_reader ", 3, None),
    ("admin", False, "Bearer cw_admin", 2, None),
    ("expired", False, "Bearer cw_expired", 2, None),
    ("expired while cached", False, "Bearer cw_stale", 2, expire_while_cached),
    ("revoked", False, "Bearer cw_revoked", 2, None),
    ("wrong scope", False, "Bearer cw_writer", 2, None),
    ("wrong scope, public reads", True, "Bearer cw_writer", 2, None),
    ("wrong scope, key and limit known", False, "Bearer cw_writer", 2, writer_seen_before),
    ("rate limited, exact counter", False, "Bearer cw_slow", 4, None),
    ("rate limited, decided locally", False, "Bearer cw_busy", 3, over_the_limit),
]
ADMITTED_FAST = {"no key, public reads", "reader", "reader, lower-case scheme, spaces", "admin"}

Outcome = tuple[int, list[tuple[str, str]], bytes]


async def run(app: FastAPI, authorization: str | None, requests: int) -> list[Outcome]:
    headers = {"authorization": authorization} if authorization is not None else {}
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 1234))
    outcomes = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for _ in range(requests):
            response = await client.get("/v1/courses/c:1", headers=headers)
            kept = [(k, v) for k, v in response.headers.items() if k != "x-request-id"]
            outcomes.append((response.status_code, kept, response.content))
    return outcomes


@pytest.mark.parametrize(("name", "public", "authorization", "requests", "prepare"), CASES)
def test_fast_path_and_route_answer_alike(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    public: bool,
    authorization: str | None,
    requests: int,
    prepare: Prepare | None,
) -> None:
    monkeypatch.setattr(time, "time", lambda: FROZEN_S)
    answered: list[bool] = []
    original = fast_reads.cached_answer

    def watched(scope: Any) -> bytes | None:
        body = original(scope)
        answered.append(body is not None)
        return body

    outcomes = []
    for fast in (watched, lambda _scope: None):
        app = app_for(public)
        if prepare is not None:
            prepare(app)
        monkeypatch.setattr(fast_reads, "cached_answer", fast)
        outcomes.append(asyncio.run(run(app, authorization, requests)))
    with_fast_path, routed_only = outcomes
    assert with_fast_path == routed_only
    # The fast path served every admitted request it could know about (the first one of a
    # key goes to the route, which looks it up and counts it), and never a refusal.
    statuses = [status for status, _, _ in routed_only]
    if name in ADMITTED_FAST:
        assert statuses == [200] * requests and answered == [False] + [True] * (requests - 1)
    else:
        assert not any(answered) and 200 not in statuses[-1:]


def test_the_table_sees_every_refusal() -> None:
    """The cases above cover each kind of answer, so a path deciding differently shows."""
    seen: set[tuple[int, str]] = set()
    for _name, public, authorization, requests, prepare in CASES:
        app = app_for(public)
        if prepare is not None:
            prepare(app)
        for status, _, body in asyncio.run(run(app, authorization, requests)):
            seen.add((status, body.decode()))
    messages = " ".join(body for _, body in seen)
    assert {status for status, _ in seen} == {200, 401, 403, 429}
    for reason in ("No API key", "not a Bearer", "not valid", "expired", "revoked"):
        assert reason in messages, reason
