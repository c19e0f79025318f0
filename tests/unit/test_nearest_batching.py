"""Vector searches in one API process: concurrent searches with the same filter and limit share
one Milvus request, each caller gets its own hits, different filters never share a request, an
error reaches every caller of its request, and a caller that gives up does not disturb the
others. The vector store is a fake that records its requests."""

import asyncio

import pytest

from shared.catalog.nearest import Hits, NearestBatcher


class FakeStore:
    """Hits that identify their query vector; held while `gate` is unset, optionally failing."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.requests: list[tuple[int, str, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = fail

    async def search_many(
        self, vectors: list[list[float]], expression: str, limit: int
    ) -> list[Hits]:
        self.requests.append((len(vectors), expression, limit))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [[(f"course-{vector[0]:g}", vector[0])] for vector in vectors]


@pytest.mark.anyio
async def test_searches_arriving_during_a_request_share_the_next_one() -> None:
    store = FakeStore()
    store.gate.clear()
    batcher = NearestBatcher(store.search_many)
    first = asyncio.create_task(batcher.nearest([1.0], "", 10))
    await asyncio.sleep(0)
    others = [asyncio.create_task(batcher.nearest([float(n)], "", 10)) for n in range(2, 7)]
    await asyncio.sleep(0)
    store.gate.set()
    hits = await asyncio.gather(first, *others)
    assert [h[0][0] for h in hits] == [f"course-{n}" for n in range(1, 7)]
    assert store.requests == [(1, "", 10), (5, "", 10)]


@pytest.mark.anyio
async def test_different_filters_or_limits_never_share_a_request() -> None:
    store = FakeStore()
    batcher = NearestBatcher(store.search_many)
    await asyncio.gather(
        batcher.nearest([1.0], 'level == "beginner"', 10),
        batcher.nearest([2.0], "", 10),
        batcher.nearest([3.0], "", 20),
    )
    assert sorted(store.requests) == [(1, "", 10), (1, "", 20), (1, 'level == "beginner"', 10)]


@pytest.mark.anyio
async def test_an_error_reaches_every_caller_of_its_request_and_the_next_request_tries_again() -> (
    None
):
    store = FakeStore(fail=ConnectionError("milvus down"))
    store.gate.clear()
    batcher = NearestBatcher(store.search_many)
    calls = [asyncio.create_task(batcher.nearest([float(n)], "", 10)) for n in range(3)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    store.fail = None
    assert await batcher.nearest([9.0], "", 10) == [("course-9", 9.0)]


@pytest.mark.anyio
async def test_a_caller_that_gives_up_leaves_the_others_their_hits() -> None:
    store = FakeStore()
    store.gate.clear()
    batcher = NearestBatcher(store.search_many)
    impatient = asyncio.create_task(batcher.nearest([1.0], "", 10))
    patient = asyncio.create_task(batcher.nearest([2.0], "", 10))
    await asyncio.sleep(0)
    impatient.cancel()
    store.gate.set()
    assert await patient == [("course-2", 2.0)]
    with pytest.raises(asyncio.CancelledError):
        await impatient
