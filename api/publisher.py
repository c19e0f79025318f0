"""Publishing accepted tasks: one thread per API process, confirms pipelined.

Each accepted write still answers 202 only once RabbitMQ has confirmed its message. Instead of
one thread hop and one confirm round trip per write, a single thread takes every message waiting
for it, publishes them back to back on one confirm-mode channel, then waits for their confirms
together. Messages are built by `publish_write` with this thread's producer, so they are the
ones the sweeper sends and the workers expect.

Every wait of the thread is bounded: connecting (the publish timeout), the socket's reads and
writes (channel open, confirm_select; `broker_socket_timeout_s`), the confirms (the publish
timeout). After an error the socket is dropped, never closed gracefully (the AMQP close waits
for an answer that may never come). The topology is declared once, on the first connection.
While idle the thread sends and checks AMQP heartbeats, so a half-open connection is found
before a write waits on it; `stalled_for` tells the API's liveness check how long the thread
has been inside one round."""

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery

from shared.messaging import (
    declare_topology,
    drop,
    keep_alive,
    publish_write,
    publishing_connection,
)

log = logging.getLogger(__name__)


class PublishFailed(RuntimeError):
    """The broker refused the message (nack) or did not confirm it in time."""


@dataclass
class _Pending:
    task_id: uuid.UUID
    task_type: str
    request_id: str | None
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]

    def settle(self, error: BaseException | None) -> None:
        def set_outcome() -> None:
            if self.done.done():  # the request gave up waiting
                return
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(set_outcome)


class ConfirmedPublisher:
    def __init__(
        self, app: Celery, timeout_s: float, max_batch: int = 500, idle_check_s: float = 5.0
    ) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self.idle_check_s = idle_check_s
        self._declared = False
        self._round_started: float | None = None  # monotonic; None while waiting for work
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self._producer: Any = None
        self._channel: Any = None
        self._sent = 0  # delivery tags of this channel (confirm mode numbers them from 1)
        self._unconfirmed: set[int] = set()
        self._refused: set[int] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._close()

    def stalled_for(self) -> float:
        """Seconds the thread has spent in its current round of work (0 while it waits for
        work). Every wait in a round is bounded, so a long one means a wait that is not."""
        if self._thread is None or not self._thread.is_alive():
            return float("inf") if self._thread is not None else 0.0
        started = self._round_started
        return 0.0 if started is None else time.monotonic() - started

    async def publish(self, task_id: uuid.UUID, task_type: str, request_id: str | None) -> None:
        """Returns once the broker confirmed the message; raises if it did not."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(task_id, task_type, request_id, loop, done))
        await done

    # --- the publishing thread --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_check_s)
            except queue.Empty:
                self._round_started = time.monotonic()
                self._keep_alive()
                self._round_started = None
                continue
            if first is None:
                return
            self._round_started = time.monotonic()
            self._work(first)
            self._round_started = None

    def _keep_alive(self) -> None:
        if self._connection is None:
            return
        try:
            keep_alive(self._connection)
        except Exception as exc:  # the next batch connects again
            log.info("the publisher's connection is gone (%r)", exc)
            self._close()

    def _work(self, first: _Pending) -> None:
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        try:
            self._publish(batch)
        except Exception:  # never let the thread die: every later write would wait in vain
            log.exception("the publisher failed on a batch of %d", len(batch))
            for item in batch:
                item.settle(PublishFailed("the publisher failed"))

    def _publish(self, batch: list[_Pending]) -> None:
        # A connection that sat idle may have been dropped without our knowing (a restarted
        # broker, a NAT timeout): a batch that fails on it is sent once more on a new one.
        # Sending a message twice is safe (tasks re-read their rows and are idempotent).
        retry = self._channel is not None
        while True:
            try:
                tags = self._send(batch)
                break
            except Exception as exc:
                # The channel's numbering is unknown after an error: start again on a new one.
                self._close()
                if retry:
                    retry = False
                    continue
                log.warning("publishing %d task(s) failed: %r", len(batch), exc)
                for item in batch:
                    item.settle(exc)
                return
        for item, tag in zip(batch, tags, strict=True):
            refused = tag in self._refused
            item.settle(PublishFailed("the broker refused the message") if refused else None)
        self._refused.difference_update(tags)

    def _send(self, batch: list[_Pending]) -> list[int]:
        """Publish the batch and wait for every confirm; the delivery tag of each message."""
        self._ensure_channel()
        tags: list[int] = []
        for item in batch:
            publish_write(
                self.app, item.task_id, item.task_type, item.request_id, producer=self._producer
            )
            self._sent += 1
            tags.append(self._sent)
            self._unconfirmed.add(self._sent)
        deadline = time.monotonic() + self.timeout_s
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishFailed(f"no confirm from the broker in {self.timeout_s} s")
            self._connection.drain_events(timeout=remaining)
        return tags

    def _ensure_channel(self) -> None:
        if self._channel is not None:
            return
        # A connection of its own, without kombu's wait-per-message confirms: this thread
        # waits for them a batch at a time.
        if not self._declared:
            declare_topology(self.app)
            self._declared = True
        connection = publishing_connection(self.app, confirm=False, heartbeat=True)
        self._connection = connection  # dropped by _close if anything below fails
        connection.ensure_connection(max_retries=1, timeout=self.timeout_s)
        channel = connection.channel()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self._connection, self._channel = connection, channel
        self._producer = self.app.amqp.Producer(channel, auto_declare=False)
        self._sent = 0
        self._unconfirmed.clear()
        self._refused.clear()

    def _confirmed(self, delivery_tag: int, multiple: bool) -> set[int]:
        tags = {t for t in self._unconfirmed if t <= delivery_tag} if multiple else {delivery_tag}
        self._unconfirmed -= tags
        return tags

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._confirmed(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused |= self._confirmed(delivery_tag, multiple)

    def _close(self) -> None:
        connection, self._connection, self._channel, self._producer = (
            self._connection,
            None,
            None,
            None,
        )
        drop(connection)
