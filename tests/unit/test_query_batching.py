"""Query embeddings in one API process: concurrent queries share one encode call, each caller gets
its own vector, an encoder error reaches every caller of its batch, and a caller that gives up
does not disturb the others. The encoder is a fake that records its calls."""

import asyncio
import threading
from collections import OrderedDict

import numpy as np
import pytest

from shared.catalog.query_embedding import QueryBatcher


class FakeEncoder:
    """A vector that identifies its text; optionally held until released (an encode in
    progress) or failing."""

    def __init__(self, hold: bool = False, fail: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.fail = fail

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.started.set()
        assert self.release.wait(5), "the test never released the encoder"
        if self.fail is not None:
            raise self.fail
        return np.array([vector_of(text) for text in texts], dtype=np.float32)


def vector_of(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 997)]


class DictCache:
    def __init__(self) -> None:
        self.items: OrderedDict[str, list[float]] = OrderedDict()

    def get(self, text: str) -> list[float] | None:
        return self.items.get(text)

    def put(self, text: str, vector: list[float]) -> None:
        self.items[text] = vector


async def until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 5)


def test_concurrent_queries_share_one_encode_and_each_gets_its_own_vector() -> None:
    encoder = FakeEncoder()
    texts = ["learn python", "deep learning", "finance for managers", "sql", "art history"]

    async def run() -> list[list[float]]:
        batcher = QueryBatcher(encoder, window_s=0.01)
        return await asyncio.gather(*(batcher.embed(text) for text in texts))

    vectors = asyncio.run(run())
    assert encoder.calls == [texts]
    assert vectors == [vector_of(text) for text in texts]


def test_queries_arriving_during_an_encode_go_together_into_the_next() -> None:
    encoder = FakeEncoder(hold=True)

    async def run() -> list[list[float]]:
        batcher = QueryBatcher(encoder, window_s=0)
        first = asyncio.ensure_future(batcher.embed("first"))
        await until(encoder.started)
        later = [asyncio.ensure_future(batcher.embed(t)) for t in ("second", "third", "fourth")]
        await asyncio.sleep(0.01)
        encoder.release.set()
        return await asyncio.gather(first, *later)

    vectors = asyncio.run(run())
    assert encoder.calls == [["first"], ["second", "third", "fourth"]]
    assert vectors == [vector_of(t) for t in ("first", "second", "third", "fourth")]


def test_repeated_queries_are_encoded_once() -> None:
    encoder = FakeEncoder()
    cache = DictCache()

    async def run() -> tuple[list[list[float]], list[float]]:
        batcher = QueryBatcher(encoder, cache, window_s=0.01)
        # The same query three times at once (white space aside), then again later.
        together = await asyncio.gather(
            batcher.embed("machine learning"),
            batcher.embed("machine  learning"),
            batcher.embed(" machine learning "),
        )
        return list(together), await batcher.embed("machine learning")

    together, later = asyncio.run(run())
    assert encoder.calls == [["machine learning"]]
    assert together == [vector_of("machine learning")] * 3
    assert later == vector_of("machine learning")


def test_an_encoder_error_reaches_every_caller_of_the_batch_and_the_next_batch_works() -> None:
    encoder = FakeEncoder(fail=RuntimeError("model exploded"))

    async def run() -> tuple[list[BaseException | list[float]], list[float]]:
        batcher = QueryBatcher(encoder, window_s=0.01)
        outcomes = await asyncio.gather(
            *(batcher.embed(t) for t in ("a b", "c d", "e f")), return_exceptions=True
        )
        encoder.fail = None
        return outcomes, await batcher.embed("a b")

    outcomes, retried = asyncio.run(run())
    assert len(encoder.calls[0]) == 3
    assert all(isinstance(o, RuntimeError) and "model exploded" in str(o) for o in outcomes)
    assert retried == vector_of("a b")


def test_a_cancelled_caller_does_not_break_the_others() -> None:
    encoder = FakeEncoder(hold=True)
    cache = DictCache()

    async def run() -> tuple[list[list[float]], bool]:
        batcher = QueryBatcher(encoder, cache, window_s=0)
        leaving = asyncio.ensure_future(batcher.embed("shared query"))
        staying = asyncio.ensure_future(batcher.embed("shared query"))
        other = asyncio.ensure_future(batcher.embed("another query"))
        await until(encoder.started)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        encoder.release.set()
        results = await asyncio.gather(staying, other)
        return list(results), leaving.cancelled()

    (staying, other), cancelled = asyncio.run(run())
    assert cancelled
    assert staying == vector_of("shared query")
    assert other == vector_of("another query")
    assert cache.get("shared query") == vector_of("shared query")
