"""Read-your-writes: consistency tokens and the bounded wait of a read that carries one.

Every 202 carries a token naming the version its write will produce (`tasks.seq`, stamped on
every course it writes), signed with an HMAC key from the settings so a token made up, altered
or minted by another deployment is refused (422), not waited on. A read that carries a token
waits until the write is visible in PostgreSQL and Milvus both, then answers; past its wait it
answers 503 `consistency_timeout` saying what is not visible yet, never older data silently.

When is a write visible? A worker records a task finished only after its items are committed in
PostgreSQL *and* synced to Milvus (strong consistency on the collection: an upsert is seen by
the next search), so a finished task in the ledger is the one condition to check. It is checked
through the session the read itself uses (a replica, when one is configured: its ledger row and
the course rows arrive in the same WAL order). A token once satisfied stays satisfied (versions
only grow, a finished task never runs again), so each process remembers satisfied ones and a
repeated token costs no query. Without a replica, each process also hears every task finish
(`FINISHED_CHANNEL`, migration 0012, at the finishing commit) and remembers those, so even a
token's first read costs no query once its task has ended.
"""

import asyncio
import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.errors import CoursewiseError, ErrorDetail, InvalidRequest
from shared.ledger.models import Task
from shared.ledger.schemas import TERMINAL, TaskStatus

PREFIX = "ct1"
FINISHED_CHANNEL = "coursewise_tasks_finished"
LOCATION: list[str | int] = ["query", "consistency"]


def _signature(key: bytes, seq: int) -> str:
    digest = hmac.new(key, f"{PREFIX}.{seq}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(key: bytes, seq: int) -> str:
    """`ct1.<seq>.<signature>`: the version a write will produce, signed."""
    return f"{PREFIX}.{seq}.{_signature(key, seq)}"


def read_token(key: bytes, token: str) -> int:
    """The version a token names; 422 for anything malformed or not signed with `key`."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isdigit() or len(parts[1]) > 18:
        raise InvalidRequest(
            "The consistency token is malformed; send one a 202 returned, as is.",
            [ErrorDetail(LOCATION, "malformed_token", "expected ct1.<version>.<signature>")],
        )
    seq = int(parts[1])
    if not hmac.compare_digest(parts[2], _signature(key, seq)):
        raise InvalidRequest(
            "The consistency token was not issued by this service.",
            [ErrorDetail(LOCATION, "foreign_token", "signature does not match")],
        )
    return seq


class ConsistencyTimeout(CoursewiseError):
    status_code = 503
    code = "consistency_timeout"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


@dataclass(frozen=True)
class Pending:
    """Why a token is not satisfied yet: its task as the ledger holds it."""

    task_id: str
    status: str
    received: int
    applied: int
    failed: int


class ConsistencyWaiter:
    """Waits for tokens, remembering up to `remember` satisfied versions (an LRU)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        remember: int = 100_000,
        poll_s: tuple[float, float] = (0.005, 0.05),
    ) -> None:
        self.sessionmaker = sessionmaker
        self.remember = remember
        self.poll_s = poll_s
        self._satisfied: OrderedDict[int, None] = OrderedDict()

    def known_satisfied(self, seq: int) -> bool:
        if seq in self._satisfied:
            self._satisfied.move_to_end(seq)
            return True
        return False

    def on_finished(self, payload: str) -> None:
        """A notification of tasks finished on the primary: their versions, one a line. Only
        for a process that reads the primary (a replica may not have them yet)."""
        for line in payload.split("\n"):
            if line.isdigit():
                self._note(int(line))

    def _note(self, seq: int) -> None:
        self._satisfied[seq] = None
        if len(self._satisfied) > self.remember:
            self._satisfied.popitem(last=False)

    async def _pending(self, seq: int) -> Pending | None:
        """None when the write is visible: its task finished (or was pruned, which only
        happens to finished tasks)."""
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(Task.id, Task.status, Task.received, Task.applied, Task.failed).where(
                        Task.seq == seq
                    )
                )
            ).one_or_none()
        if row is None or TaskStatus(row.status) in TERMINAL:
            return None
        return Pending(str(row.id), row.status, row.received, row.applied, row.failed)

    async def wait(self, seq: int, timeout_s: float) -> None:
        if self.known_satisfied(seq):
            return
        deadline = time.monotonic() + timeout_s
        pause = self.poll_s[0]
        while True:
            pending = await self._pending(seq)
            if pending is None:
                self._note(seq)
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timeout(seq, timeout_s, pending)
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, self.poll_s[1])


def _timeout(seq: int, timeout_s: float, pending: Pending) -> ConsistencyTimeout:
    if pending.status == TaskStatus.queued:
        what = "neither PostgreSQL nor Milvus has it: the task is still queued"
    else:
        done = pending.applied + pending.failed
        what = (
            f"the task is processing: {pending.received - done} of {pending.received} item(s) "
            "not yet written to PostgreSQL and indexed in Milvus"
        )
    return ConsistencyTimeout(
        f"The write of task {pending.task_id} (version {seq}) is not visible after "
        f"{timeout_s:g} s: {what}. Retry later, or read without the token.",
        [ErrorDetail(LOCATION, "not_visible", what)],
    )
