"""The `consistency` query parameter of reads: wait (bounded) for the write a token names."""

from typing import Annotated

from fastapi import Depends, Query, Request

from shared.ledger.consistency import ConsistencyWaiter, read_token
from shared.settings import Settings


async def _consistency(
    request: Request,
    consistency: Annotated[
        str | None,
        Query(
            max_length=200,
            description="a `consistency_token` from a 202: answer once that write is visible in "
            "PostgreSQL and Milvus (503 `consistency_timeout` if it is not within the wait)",
        ),
    ] = None,
    consistency_wait: Annotated[
        float | None,
        Query(gt=0, le=10, description="seconds to wait for the token (default 2)"),
    ] = None,
) -> int | None:
    """The version the read waited for (it must see that write), or None."""
    if consistency is None:
        return None
    settings: Settings = request.app.state.settings
    seq = read_token(settings.consistency_token_key.get_secret_value().encode(), consistency)
    waiter: ConsistencyWaiter = request.app.state.consistency
    await waiter.wait(seq, consistency_wait or settings.consistency_wait_s)
    return seq


ConsistencyDep = Annotated[int | None, Depends(_consistency)]
