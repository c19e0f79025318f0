"""Nearest-vector searches for one API process: concurrent ones with the same filter and limit
go to Milvus as one request with several query vectors.

Milvus scans the collection once per request whatever the number of query vectors (a flat scan
is one matrix product), so under load one request for ten searches costs little more than one
request for one. The first search goes at once; searches that arrive while a request is running
wait for it, and then go together (at most `max_batch` vectors a request).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Hits = list[tuple[str, float]]
SearchMany = Callable[[list[list[float]], str, int], Awaitable[list[Hits]]]


@dataclass
class _Group:
    waiting: list[tuple[list[float], asyncio.Future[Hits]]] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None


class NearestBatcher:
    """`nearest(vector, expression, limit)` for any number of concurrent callers in one event
    loop. A request's error is raised to each of its callers; the next request tries again. A
    caller that is cancelled (its time budget ran out) stops waiting; the others, and the
    request, are not affected."""

    def __init__(self, search_many: SearchMany, *, max_batch: int = 32) -> None:
        self._search_many = search_many
        self.max_batch = max_batch
        self._groups: dict[tuple[str, int], _Group] = {}

    async def nearest(self, vector: list[float], expression: str, limit: int) -> Hits:
        key = (expression, limit)
        group = self._groups.setdefault(key, _Group())
        future: asyncio.Future[Hits] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        group.waiting.append((vector, future))
        if group.runner is None or group.runner.done():
            group.runner = asyncio.create_task(self._run(key, group))
        # Shielded: cancelling this caller must not cancel the request the others share.
        return await asyncio.shield(future)

    async def _run(self, key: tuple[str, int], group: _Group) -> None:
        try:
            while group.waiting:
                batch = group.waiting[: self.max_batch]
                del group.waiting[: len(batch)]
                await self._send(key, batch)
        except BaseException as exc:  # cancelled (shutdown): no caller may wait forever
            for _, future in group.waiting:
                if not future.done():
                    future.set_exception(RuntimeError(f"vector search stopped: {exc!r}"))
            group.waiting.clear()
            raise
        finally:
            if not group.waiting and self._groups.get(key) is group:
                del self._groups[key]

    async def _send(
        self, key: tuple[str, int], batch: list[tuple[list[float], asyncio.Future[Hits]]]
    ) -> None:
        expression, limit = key
        live = [(vector, future) for vector, future in batch if not future.done()]
        if not live:
            return
        try:
            results = await self._search_many([vector for vector, _ in live], expression, limit)
        except Exception as exc:
            log.warning("vector search of %d queries failed: %r", len(live), exc)
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), hits in zip(live, results, strict=True):
            if not future.done():
                future.set_result(hits)


def _retrieve(future: asyncio.Future[Hits]) -> None:
    if not future.cancelled():
        with contextlib.suppress(BaseException):
            future.exception()
