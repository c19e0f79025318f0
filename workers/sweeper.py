"""The sweeper: a process of its own that publishes again every task whose message may be lost.

    python -m workers.sweeper

A loop, not a Celery task: it needs PostgreSQL to decide and the broker only to publish, so
neither a frozen worker, nor beat, nor a queue that is not being delivered can silence it (it
used to run in the write worker, scheduled by beat: a frozen worker silenced its own safety
net). Each round:

1. claim (one short transaction, committed): the due tasks, skipping rows others hold, each
   stamped as published now; tasks out of publishes are failed. A queue that holds at least one
   ready message per queued task of its kinds is left alone: every one of them may only be
   waiting behind the backlog, and re-publishing there would flood the queue with duplicates
   and run tasks out of publishes while they wait (what a 20-minute soak at load showed);
2. publish them on a connection of its own, every wait bounded (publish timeout), no
   transaction open; the first failure stops the round (the broker is in trouble) and drops
   the socket;
3. mark: confirmed ones count one more publish, the others get their stamp cleared so the next
   round takes them.

Safe to run twice at once (claims skip each other's rows and stamps), and safe to kill at any
point: a claimed but unpublished task is due again after `requeue_after_s`. Retention (pruning
expired idempotency keys, old finished tasks, rate counters) runs here too, between rounds.
"""

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.access.repository import RateCounterRepository
from shared.access.service import RATE_WINDOW_S
from shared.db import create_engine, create_sessionmaker, transaction
from shared.ledger.idempotency import IdempotencyRepository
from shared.ledger.kinds import KINDS
from shared.ledger.repository import TaskRepository
from shared.liveness import Heartbeat
from shared.logging import configure_logging
from shared.messaging import (
    build_celery,
    declare_topology,
    drop,
    keep_alive,
    publish_write,
    publishing_connection,
    queue_depths,
)
from shared.recommendations.repository import IssuedListRepository
from shared.settings import Settings, get_settings
from workers.tasks.webhooks import take_and_send

log = logging.getLogger(__name__)


@dataclass
class RoundReport:
    published: int = 0
    unpublished: int = 0
    given_up: int = 0
    waiting: list[str] = field(default_factory=list)  # queues with a message per queued task
    pruned: dict[str, int] = field(default_factory=dict)


def queues_of_kinds(settings: Settings) -> dict[str, list[str]]:
    """Each queue carrying ledger tasks, with the task types it carries."""
    by_queue: dict[str, list[str]] = {}
    for task_type, kind in KINDS.items():
        by_queue.setdefault(kind.queue(settings), []).append(task_type.value)
    return by_queue


def waiting_types(
    settings: Settings, ready: Mapping[str, int], queued: Mapping[str, int]
) -> tuple[set[str], list[str]]:
    """The task types (and their queues) whose queue holds at least as many ready messages as
    there are queued tasks of those types: no message of theirs need be lost. Fewer ready
    messages than queued tasks means some may be (a publish that never reached the broker, a
    dead-lettered message): those queues are swept as usual. A queue missing from `ready` (its
    depth unreadable) is swept as usual too."""
    types: set[str] = set()
    queues: list[str] = []
    for queue, kinds in queues_of_kinds(settings).items():
        if queue not in ready:
            continue
        if ready[queue] >= sum(queued.get(task_type, 0) for task_type in kinds):
            types.update(kinds)
            queues.append(queue)
    return types, queues


async def prune(settings: Settings, session: AsyncSession) -> dict[str, int]:
    """Retention: nothing the API records grows without end. Batched, so one round stays short
    even after a long outage; the next rounds finish the rest."""
    now = datetime.now(UTC)
    retention = timedelta(days=settings.task_retention_days)
    return {
        "idempotency_keys": await IdempotencyRepository(session).prune(),
        "tasks": await TaskRepository(session).prune_finished(
            older_than=now - retention, limit=1000
        ),
        "rate_counters": await RateCounterRepository(session).prune(
            before_window=int(now.timestamp()) - 2 * RATE_WINDOW_S
        ),
        # A list older than the task retention is no longer attributed (counted unknown_list).
        "recommendation_lists": await IssuedListRepository(session).prune(
            older_than=now - retention, limit=10_000
        ),
    }


class SweepPublisher:
    """Confirmed publishes on one connection, each bounded; after an error the socket is
    dropped (not closed gracefully) and the next publish connects again."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._connection: Any = None
        self._producer: Any = None

    def _connect(self) -> Any:
        if self._connection is None:
            connection = publishing_connection(self.app, confirm=True, heartbeat=True)
            self._connection = connection
            connection.ensure_connection(
                max_retries=1, timeout=self.app.conf.coursewise_publish_timeout_s
            )
            self._producer = self.app.amqp.Producer(connection, auto_declare=False)
        return self._connection

    def publish(self, task_id: uuid.UUID, task_type: str) -> None:
        try:
            self._connect()
            publish_write(self.app, task_id, task_type, producer=self._producer)
        except Exception:
            self.reset()
            raise

    def ready(self, queues: Iterable[str]) -> dict[str, int]:
        """Ready messages in each queue, on the same bounded connection."""
        try:
            depths = queue_depths(self._connect(), queues)
        except Exception:
            self.reset()
            raise
        return {queue: messages for queue, (messages, _) in depths.items()}

    def keep_alive(self) -> None:
        if self._connection is None:
            return
        try:
            keep_alive(self._connection)
        except Exception as exc:
            log.info("the sweeper's broker connection is gone (%r); reconnecting on use", exc)
            self.reset()

    def reset(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        drop(connection)


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        publisher: SweepPublisher,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.publisher = publisher
        self.heartbeat = heartbeat or Heartbeat(None, "sweeper")
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def sweep(self) -> RoundReport:
        settings = self.settings
        report = RoundReport()
        # Read before the ledger: a message published meanwhile only makes a queue look
        # shorter than it is, which errs towards sweeping.
        ready = await self._ready()
        async with transaction(self.sessionmaker) as session:
            repo = TaskRepository(session)
            waiting: set[str] = set()
            if ready:
                waiting, report.waiting = waiting_types(
                    settings, ready, await repo.queued_by_type()
                )
            due, given_up = await repo.claim_due(
                now=datetime.now(UTC),
                requeue_after=timedelta(seconds=settings.requeue_after_s),
                stuck_after=timedelta(seconds=settings.stuck_processing_after_s),
                max_publishes=settings.max_publishes,
                limit=settings.sweep_batch,
                waiting_types=waiting,
            )
        report.given_up = len(given_up)
        # No transaction is open from here on: a publish that waits its whole bound holds
        # no row locks.
        published: list[uuid.UUID] = []
        failed: list[uuid.UUID] = []
        for index, (task_id, task_type) in enumerate(due):
            try:
                # In a thread: the loop keeps the heartbeat honest about the loop, not about
                # a publish that is bounded anyway.
                await asyncio.to_thread(self.publisher.publish, task_id, task_type)
            except Exception as exc:
                log.warning(
                    "the sweeper could not publish (%r); %d task(s) left for the next round",
                    exc,
                    len(due) - index,
                )
                failed = [task_id for task_id, _ in due[index:]]
                break
            published.append(task_id)
        async with transaction(self.sessionmaker) as session:
            repo = TaskRepository(session)
            await repo.mark_published(published)
            await repo.mark_unpublished(failed)
        report.published, report.unpublished = len(published), len(failed)
        if published:
            log.warning("re-published %d task(s) whose message may have been lost", len(published))
        if given_up:
            log.warning("gave up on %d task(s) that kept being lost", len(given_up))
        return report

    async def _ready(self) -> dict[str, int]:
        """Ready messages per task queue; empty when the broker cannot say (then every queue
        is swept: the publishes will tell whether the broker is there)."""
        try:
            return await asyncio.to_thread(
                self.publisher.ready, queues_of_kinds(self.settings).keys()
            )
        except Exception as exc:
            log.info("the task queues' depths are unreadable (%r); sweeping them all", exc)
            return {}

    async def prune(self) -> dict[str, int]:
        async with transaction(self.sessionmaker) as session:
            pruned = await prune(self.settings, session)
        if any(pruned.values()):
            log.info("pruned %s", pruned)
        return pruned

    async def run(self) -> None:
        interval = self.settings.sweep_interval_s
        tick = min(self.settings.liveness_interval_s, interval)
        while not self._stopping.is_set():
            self.heartbeat.touch()
            started = time.monotonic()
            try:
                await self.sweep()
                await self.prune()
                # Webhook deliveries no task was sent for (an API cancel, or a crash after a
                # commit).
                await take_and_send(self.sessionmaker, self.publisher.app)
            except Exception:  # PostgreSQL away, say: the next round tries again
                log.exception("a sweep round failed")
            # Wait for the next round, touching the heartbeat and keeping the idle connection
            # alive meanwhile.
            while not self._stopping.is_set():
                remaining = interval - (time.monotonic() - started)
                if remaining <= 0:
                    break
                self.heartbeat.touch()
                await asyncio.to_thread(self.publisher.keep_alive)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), min(tick, remaining))


async def main_async(settings: Settings) -> None:
    app = build_celery(settings)
    engine = create_engine(settings)
    sweeper = Sweeper(
        settings,
        create_sessionmaker(engine),
        SweepPublisher(app),
        Heartbeat(settings.liveness_dir, "sweeper"),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sweeper.stop)
    try:
        # The topology once at start-up: prestart declared it, this brings it back on a
        # broker that lost it. Not fatal: a broker that is down now may be up next round.
        try:
            await asyncio.to_thread(declare_topology, app)
        except Exception as exc:
            log.warning("declaring the broker topology failed (%r); carrying on", exc)
        log.info("sweeper started: a round every %.0f s", settings.sweep_interval_s)
        await sweeper.run()
    finally:
        sweeper.publisher.reset()
        sweeper.heartbeat.remove()
        await engine.dispose()
        app.close()


def main() -> None:
    configure_logging()
    asyncio.run(main_async(get_settings()))


if __name__ == "__main__":
    main()
