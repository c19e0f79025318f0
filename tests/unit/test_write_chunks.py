"""Bulk tasks are applied in chunks: every item exactly once, in order."""

import pytest

from shared.catalog.writes import chunked


@pytest.mark.parametrize(
    ("count", "size", "sizes"),
    [(0, 3, []), (1, 3, [1]), (3, 3, [3]), (7, 3, [3, 3, 1]), (5, 1, [1] * 5), (4, 10, [4])],
)
def test_chunked_covers_every_item_once_in_order(count: int, size: int, sizes: list[int]) -> None:
    items = list(range(count))
    chunks = chunked(items, size)
    assert [len(chunk) for chunk in chunks] == sizes
    assert [item for chunk in chunks for item in chunk] == items
