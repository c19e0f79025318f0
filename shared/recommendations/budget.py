"""The vector index within a read's budget: every recommendation surface (a learner's list,
similar courses) asks Milvus through one `VectorBudget`, so a Milvus that is slow, failing or
behind an open breaker costs a read at most `rec_vector_budget_s`, and the read is answered from
PostgreSQL instead, marked degraded."""

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

import anyio
import grpc
from pymilvus import AsyncMilvusClient
from pymilvus.exceptions import MilvusException

from shared.catalog.search import CircuitBreaker
from shared.metrics import RECOMMENDATIONS_DEGRADED
from shared.milvus import loaded_async
from shared.settings import Settings

log = logging.getLogger(__name__)

# When the current read's vector part must be done, per request task.
_DEADLINE: ContextVar[float | None] = ContextVar("vector_deadline", default=None)
T = TypeVar("T")


class VectorBudget:
    def __init__(self, milvus: AsyncMilvusClient, settings: Settings):
        self.milvus = milvus
        self.budget_s = settings.rec_vector_budget_s
        # One breaker for every surface: they all ask the same index.
        self.breaker = CircuitBreaker(settings.search_breaker_cooldown_s, probe_s=self.budget_s)

    async def call(self, collection: str, call: Callable[[], Awaitable[T]]) -> T:
        """A Milvus call within the read's deadline (none outside a read's vector part)."""
        deadline = _DEADLINE.get()
        if deadline is None:
            return await loaded_async(self.milvus, collection, call)
        with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
            return await loaded_async(self.milvus, collection, call)

    async def run(self, surface: str, work: Callable[[], Awaitable[None]]) -> str | None:
        """Run a read's vector part within the budget; None if it was done, else why not
        (circuit_open, timeout, error), counted by surface. PostgreSQL errors pass through."""
        reason = await self._run(work)
        if reason is not None:
            RECOMMENDATIONS_DEGRADED.labels(surface, reason).inc()
        return reason

    async def _run(self, work: Callable[[], Awaitable[None]]) -> str | None:
        if not self.breaker.allows():
            return "circuit_open"
        token = _DEADLINE.set(anyio.current_time() + self.budget_s)
        try:
            await work()
        except TimeoutError:
            reason = "timeout"
        except (MilvusException, grpc.RpcError) as exc:
            log.warning("a read without the vector index: %r", exc)
            reason = "error"
        else:
            self.breaker.succeeded()
            return None
        finally:
            _DEADLINE.reset(token)
        self.breaker.failed()
        return reason
