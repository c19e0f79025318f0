"""Courses by id, kept in each API process as the JSON they are answered with, and dropped the
moment PostgreSQL reports them changed.

Every change to a course row is announced on the channel `coursewise_courses` by a trigger
(migration 0005), delivered at commit. Each API process listens on its own connection and drops
the ids it hears (or everything, for "*"). While that connection is down nothing is served
from, or stored in, the cache, and it is emptied: a notification missed then could otherwise
leave a stale course. A read that raced a change does not store its result (the generation
moved), and a TTL bounds what any unforeseen gap could cost.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.catalog.repository import CourseRepository
from shared.catalog.schemas import course_out
from shared.errors import CourseNotFound

CHANNEL = "coursewise_courses"
APPLICATION_NAME = "coursewise-course-cache"  # how operators find the listeners
log = logging.getLogger(__name__)


class CourseCache:
    def __init__(self, ttl_s: float, max_items: int) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.generation = 0
        self.listening = False
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.listening and self.ttl_s > 0 and self.max_items > 0

    def get(self, course_id: str) -> bytes | None:
        if not self.enabled:
            return None
        item = self._items.get(course_id)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[course_id]
            return None
        self._items.move_to_end(course_id)
        return item[1]

    def put(self, course_id: str, body: bytes, generation: int) -> None:
        """Store what was read when the generation was `generation`, if nothing changed since."""
        if not self.enabled or generation != self.generation:
            return
        self._items[course_id] = (time.monotonic() + self.ttl_s, body)
        self._items.move_to_end(course_id)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def invalidate(self, ids: Iterable[str] | None) -> None:
        """Forget these courses (None: all of them)."""
        self.generation += 1
        if ids is None:
            self._items.clear()
            return
        for course_id in ids:
            self._items.pop(course_id, None)

    def on_notification(self, payload: str) -> None:
        self.invalidate(None if payload == "*" else payload.split("\n"))

    def stop_listening(self) -> None:
        self.listening = False
        self.invalidate(None)


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(
    cache: CourseCache,
    database_url: str,
    retry_s: float = 1.0,
    also: Mapping[str, Callable[[str], None]] | None = None,
) -> None:
    """Keep a connection listening for course changes, reconnecting forever (a task); `also`:
    other channels' payloads for other handlers, on the same connection."""
    dsn = asyncpg_dsn(database_url)
    while True:
        connection: Any = None
        lost = asyncio.Event()
        try:
            connection = await asyncpg.connect(
                dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME}
            )
            connection.add_termination_listener(lambda _, lost=lost: lost.set())
            await connection.add_listener(
                CHANNEL, lambda _conn, _pid, _channel, payload: cache.on_notification(payload)
            )
            for channel, handler in (also or {}).items():
                await connection.add_listener(
                    channel, lambda _c, _p, _ch, payload, handler=handler: handler(payload)
                )
            cache.invalidate(None)  # whatever happened while we were not listening
            cache.listening = True
            log.info("course cache listening for changes")
            while not lost.is_set() and not connection.is_closed():
                # The termination listener does not fire on every kind of loss; check too.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=5)
                if not lost.is_set():
                    await connection.execute("SELECT 1")
        except asyncio.CancelledError:
            cache.stop_listening()
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)
            raise
        except Exception as exc:
            log.warning("course cache listener lost its connection: %r", exc)
        cache.stop_listening()
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.terminate()
        await asyncio.sleep(retry_s)


class CachedCourses:
    """`GET /v1/courses/{id}`: the cached JSON, or the row read, answered and cached."""

    def __init__(self, cache: CourseCache, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.cache = cache
        self.sessionmaker = sessionmaker

    async def get_json(self, course_id: str, min_version: int | None = None) -> bytes:
        """`min_version`: a read that waited for the write of that version. The cached answer
        serves it only if it is at least that version (the notification dropping an older one
        may still be on its way); else the row is read."""
        body = self.cache.get(course_id)
        if body is not None and (
            min_version is None or int(json.loads(body)["version"]) >= min_version
        ):
            return body
        generation = self.cache.generation
        async with self.sessionmaker() as session:
            row = await CourseRepository(session).get_live(course_id)
        if row is None:
            raise CourseNotFound(course_id)
        # Serialised once, by the response model itself, and not validated again on the way out.
        body = course_out(row).model_dump_json().encode()
        self.cache.put(course_id, body, generation)
        return body
