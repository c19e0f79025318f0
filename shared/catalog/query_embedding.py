"""Query embeddings for one API process: repeated queries from a cache, concurrent ones together.

The model costs about the same for a batch of a few short queries as for one (one forward pass,
padding is small), so queries that arrive while an encode is running, or within a few
milliseconds of each other, wait for one shared `encode` call instead of queueing one call each
behind the model's threads.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import anyio
import numpy as np

log = logging.getLogger(__name__)


class VectorCache(Protocol):
    """What the batcher needs of a cache (shared.catalog.search.QueryCache is one)."""

    def get(self, text: str) -> list[float] | None: ...

    def put(self, text: str, vector: list[float]) -> None: ...


def query_key(text: str) -> str:
    """Queries that differ only in white space are the same query."""
    return " ".join(text.split())


class QueryBatcher:
    """`embed(text)` for any number of concurrent callers in one event loop.

    - A cached text is answered at once, without touching the model.
    - A text already waiting or being encoded is not encoded twice: its callers share the result.
    - Otherwise the text joins the next batch. A batch starts `window_s` after its first text
      arrived (so near-simultaneous queries share it) or, while an encode is running, as soon as
      that one ends, with everything that arrived meanwhile (at most `max_batch` texts a call).
    - An encoder error is raised to every caller of that batch; the next batch tries again.
    - A caller that is cancelled stops waiting; the others, and the batch, are not affected (the
      vector still ends up in the cache).
    """

    def __init__(
        self,
        encode: Callable[[list[str]], np.ndarray],
        cache: VectorCache | None = None,
        *,
        window_s: float = 0.002,
        max_batch: int = 32,
    ) -> None:
        self._encode = encode
        self._cache = cache
        self.window_s = window_s
        self.max_batch = max_batch
        # Texts not yet handed to the model, in arrival order, and every text not yet answered.
        self._queued: list[str] = []
        self._pending: dict[str, asyncio.Future[list[float]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def embed(self, text: str) -> list[float]:
        key = query_key(text)
        if self._cache is not None and (vector := self._cache.get(key)) is not None:
            return vector
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # A batch's error must not be logged as "never retrieved" when all its callers left.
            future.add_done_callback(_retrieve)
            self._pending[key] = future
            self._queued.append(key)
            if self._runner is None or self._runner.done():
                self._runner = asyncio.create_task(self._run())
        # Shielded: cancelling this caller must not cancel the future other callers share.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        batch: list[str] = []
        try:
            if self.window_s > 0:
                await asyncio.sleep(self.window_s)
            while self._queued:
                batch = self._queued[: self.max_batch]
                del self._queued[: len(batch)]
                await self._encode_batch(batch)
                batch = []
        except BaseException as exc:  # cancelled (shutdown): no caller may wait forever
            for key in [*batch, *self._queued]:
                self._fail(key, RuntimeError(f"query embedding stopped: {exc!r}"))
            self._queued.clear()
            raise

    async def _encode_batch(self, batch: list[str]) -> None:
        try:
            vectors = await anyio.to_thread.run_sync(self._encode, batch)
        except Exception as exc:
            log.warning("encoding %d queries failed: %r", len(batch), exc)
            for key in batch:
                self._fail(key, exc)
            return
        for key, row in zip(batch, vectors, strict=True):
            vector: list[float] = row.tolist()
            if self._cache is not None:
                self._cache.put(key, vector)
            future = self._pending.pop(key, None)
            if future is not None and not future.done():
                future.set_result(vector)

    def _fail(self, key: str, error: BaseException) -> None:
        future = self._pending.pop(key, None)
        if future is not None and not future.done():
            future.set_exception(error)


def _retrieve(future: asyncio.Future[list[float]]) -> None:
    if not future.cancelled():
        with contextlib.suppress(BaseException):
            future.exception()
