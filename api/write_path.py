"""Accepting a write: record the task durably, then publish its id.

The task row is committed before the message is published and before the client hears 202, so
the write survives a broker outage (the sweeper publishes it later) and a crash right after the
answer. A publish that fails is not an error for the client: the ledger already holds the write.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.publisher import ConfirmedPublisher
from shared.access.service import Caller
from shared.db import transaction
from shared.errors import (
    BacklogFull,
    ErrorDetail,
    IdempotencyKeyConflict,
    TaskNotFound,
    TaskNotRetryable,
    TooManyPendingTasks,
)
from shared.ledger.consistency import make_token
from shared.ledger.idempotency import IdempotencyKey, IdempotencyRepository, request_fingerprint
from shared.ledger.repository import LedgerInserts, TaskRepository
from shared.ledger.schemas import TaskAccepted, TaskStatus, TaskType
from shared.logging import current_request_id
from shared.settings import Settings

log = logging.getLogger(__name__)


class _KeyTaken(Exception):
    pass


@dataclass(frozen=True)
class IdempotencyRequest:
    scope: str
    key: str
    request_hash: str


class BacklogCounts:
    """Unfinished tasks (everyone's, and per owner), read from the ledger at most every
    `max_age_s`, plus the tasks this process accepted since."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], max_age_s: float) -> None:
        self.sessionmaker = sessionmaker
        self.max_age_s = max_age_s
        self._everyone: tuple[float, int] | None = None
        self._owners: dict[str, tuple[float, int]] = {}

    def _fresh(self, entry: tuple[float, int] | None, now: float) -> bool:
        return entry is not None and now - entry[0] <= self.max_age_s

    async def counts(self, owner: str | None, fresh: bool = False) -> tuple[int, int]:
        now = time.monotonic()
        stale_owner = owner is not None and not self._fresh(self._owners.get(owner), now)
        if fresh or stale_owner or not self._fresh(self._everyone, now):
            async with self.sessionmaker() as session:
                repo = TaskRepository(session)
                if owner is not None:
                    if len(self._owners) > 10_000:
                        self._owners.clear()
                    self._owners[owner] = (now, await repo.count_pending(owner))
                self._everyone = (now, await repo.count_pending())
        mine = self._owners[owner][1] if owner is not None else 0
        assert self._everyone is not None
        return mine, self._everyone[1]

    def accepted(self, owner: str | None) -> None:
        if self._everyone is not None:
            self._everyone = (self._everyone[0], self._everyone[1] + 1)
        if owner is not None and owner in self._owners:
            at, count = self._owners[owner]
            self._owners[owner] = (at, count + 1)


class WriteDispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        inserts: LedgerInserts,
        publisher: ConfirmedPublisher,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.inserts = inserts
        self.publisher = publisher
        self.settings = settings
        self.backlog = BacklogCounts(sessionmaker, settings.backlog_check_s)
        self.token_key = settings.consistency_token_key.get_secret_value().encode()

    async def accept(
        self,
        type: TaskType,
        items: list[dict[str, Any]],
        idempotency: IdempotencyRequest | None = None,
        owner: str | None = None,
    ) -> TaskAccepted:
        if idempotency is not None:
            async with self.sessionmaker() as session:
                known = await IdempotencyRepository(session).find(
                    idempotency.scope, idempotency.key
                )
            if known is not None:
                return await self._replay(known, idempotency)
        await self._check_backlog(owner)
        # The request id rides along in the payload too, so a re-publish by the sweeper still
        # tells the worker which request the write came from.
        payload: dict[str, Any] = {"items": items}
        if (request_id := current_request_id()) is not None:
            payload["request_id"] = request_id
        if idempotency is None:
            # One INSERT, committed by itself, on the driver connection (see LedgerInserts).
            task = await self.inserts.create(
                type=type.value, payload=payload, received=len(items), owner=owner
            )
        else:
            try:
                async with transaction(self.sessionmaker) as session:
                    task = await TaskRepository(session).create(
                        type=type.value, payload=payload, received=len(items), owner=owner
                    )
                    if not await IdempotencyRepository(session).claim(
                        idempotency.scope,
                        idempotency.key,
                        idempotency.request_hash,
                        task.id,
                        self.settings.idempotency_ttl_s,
                    ):
                        raise _KeyTaken  # a concurrent request with this key won: drop our task
            except _KeyTaken:
                async with self.sessionmaker() as session:
                    known = await IdempotencyRepository(session).find(
                        idempotency.scope, idempotency.key
                    )
                if known is None:  # expired in between: vanishingly rare; the client may retry
                    raise IdempotencyKeyConflict(idempotency.key) from None
                return await self._replay(known, idempotency)
        self.backlog.accepted(owner)
        await self._publish(task.id, type.value)
        return self._accepted(task.id, task.seq)

    def _accepted(self, task_id: uuid.UUID, seq: int) -> TaskAccepted:
        return TaskAccepted(
            task_id=task_id,
            status=TaskStatus.queued,
            status_url=f"/v1/tasks/{task_id}",
            consistency_token=make_token(self.token_key, seq),
        )

    async def _check_backlog(self, owner: str | None) -> None:
        """Refuse new work while the backlog is full. Counted, not locked, and the counts are
        read at most once a second per process (plus what this process accepted since), and
        read again before refusing: the caps guard against runaway growth, they are not exact
        quotas, and two COUNT queries per write were a third of the accept path's CPU."""
        mine, everyone = await self.backlog.counts(owner)
        over_mine = owner is not None and mine >= self.settings.max_pending_tasks_per_owner
        if over_mine or everyone >= self.settings.max_pending_tasks:
            # Refuse only on fresh counts: the backlog may have drained since the last read.
            mine, everyone = await self.backlog.counts(owner, fresh=True)
        if owner is not None and mine >= self.settings.max_pending_tasks_per_owner:
            raise TooManyPendingTasks(
                f"{mine} of your tasks are still queued or processing (the cap is "
                f"{self.settings.max_pending_tasks_per_owner}); wait for them to finish.",
                [ErrorDetail(["body"], "too_many_pending_tasks", "backlog cap reached")],
                retry_after_s=10,
            )
        if everyone >= self.settings.max_pending_tasks:
            raise BacklogFull(
                "The service has too much queued work right now; retry later.",
                [ErrorDetail(["body"], "backlog_full", "the service's backlog cap reached")],
                retry_after_s=30,
            )

    async def retry(self, task_id: uuid.UUID) -> TaskAccepted:
        """Queue a failed task again (operators, after fixing what made it fail)."""
        async with transaction(self.sessionmaker) as session:
            repo = TaskRepository(session)
            if not await repo.requeue_failed(task_id):
                task = await repo.get(task_id)
                if task is None:
                    raise TaskNotFound(str(task_id))
                raise TaskNotRetryable(str(task_id), task.status)
            task = await repo.get(task_id)
            assert task is not None
        await self._publish(task_id, task.type)
        return self._accepted(task_id, task.seq)

    async def _publish(self, task_id: uuid.UUID, task_type: str) -> None:
        try:
            with anyio.fail_after(self.settings.publish_timeout_s * 2):
                await self.publisher.publish(task_id, task_type, current_request_id())
        except Exception as exc:  # the ledger holds the write; the sweeper will publish it
            log.warning("publish of task %s failed, left to the sweeper: %r", task_id, exc)
            try:
                async with transaction(self.sessionmaker) as session:
                    await TaskRepository(session).mark_unpublished([task_id])
            except Exception:
                log.warning("could not clear the publish stamp of task %s", task_id)

    async def _replay(self, known: IdempotencyKey, request: IdempotencyRequest) -> TaskAccepted:
        if known.request_hash != request.request_hash:
            raise IdempotencyKeyConflict(request.key)
        # The original task's version: the replayed answer carries the same token.
        async with self.sessionmaker() as session:
            seq = await TaskRepository(session).seq_of(known.task_id)
        if seq is None:  # pruned with its key in between: vanishingly rare; the client may retry
            raise IdempotencyKeyConflict(request.key)
        return self._accepted(known.task_id, seq)


def idempotency_request(
    request: Request, caller: Caller, key: str | None, items: list[dict[str, Any]]
) -> IdempotencyRequest | None:
    """Keys are scoped to the caller's owner: two partners may pick the same key."""
    if key is None:
        return None
    fingerprint = request_fingerprint(request.method, request.url.path, items)
    return IdempotencyRequest(scope=f"owner:{caller.owner}", key=key, request_hash=fingerprint)
