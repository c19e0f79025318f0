import argparse
from datetime import timedelta

import pytest

from cli.keys import parse_duration
from shared.access.keys import Scope, display_prefix, generate_key, hash_key
from shared.access.service import Caller, retry_after


def caller(*scopes: str) -> Caller:
    return Caller(key_id=None, owner="o", scopes=frozenset(scopes), rate_limit_per_minute=10)


def test_admin_holds_every_scope_and_others_only_their_own() -> None:
    assert all(caller("admin").has(scope) for scope in Scope)
    assert caller("write").has(Scope.write) and not caller("write").has(Scope.read)
    assert not caller("read").has(Scope.admin)


def test_keys_are_random_and_hash_to_a_fixed_width() -> None:
    first, second = generate_key(), generate_key()
    assert first != second and first.startswith("cw_") and len(first) > 40
    assert len(hash_key(first)) == 64 and hash_key(first) != hash_key(second)
    assert first.startswith(display_prefix(first)) and len(display_prefix(first)) < 12


def test_under_the_limit_passes() -> None:
    assert retry_after(current=10, previous=0, elapsed=5, limit=10) is None
    # Half of the previous window still overlaps: 10 * 0.5 + 5 = 10.
    assert retry_after(current=5, previous=10, elapsed=30, limit=10) is None


def test_over_the_limit_waits_until_the_estimate_drops() -> None:
    # 45 s to the end of this window, then 11 hits fading until 9 + 1 fit: 60 * 2/11 s more.
    assert retry_after(current=11, previous=0, elapsed=15, limit=10) == 56
    # 10 * (1 - 30/60) + 6 = 11 > 10. At 42 s the previous window weighs 3: 3 + 6 + 1 = 10.
    assert retry_after(current=6, previous=10, elapsed=30, limit=10) == 12
    # At a window's very end the answer is not "1 s": the hits just made still count.
    assert 11 <= (retry_after(current=11, previous=0, elapsed=59.9, limit=10) or 0) <= 12


def test_durations() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("soon")


# --- the batched limiter: two API processes sharing one counter table ---------------------------
class SharedCounters:
    """Stands in for the rate_counters table (what `_HIT` computes), counting round trips."""

    def __init__(self) -> None:
        self.hits: dict[tuple[str, int], int] = {}
        self.round_trips = 0

    async def execute(self, _statement: object, params: dict[str, object]) -> "SharedCounters":
        self.round_trips += 1
        key = (str(params["subject"]), int(params["window"]))  # type: ignore[call-overload]
        self.hits[key] = self.hits.get(key, 0) + int(params["hits"])  # type: ignore[call-overload]
        previous = (key[0], key[1] - int(params["width"]))  # type: ignore[call-overload]
        self._row = (self.hits[key], self.hits.get(previous, 0))
        return self

    def one(self) -> tuple[int, int]:
        return self._row


def drive(limit: int, requests: int, step_s: float) -> tuple[int, SharedCounters]:
    import asyncio

    from shared.access.service import RateLimiter

    counters = SharedCounters()
    processes = [RateLimiter(sync_interval_s=1.0), RateLimiter(sync_interval_s=1.0)]
    who = Caller(key_id=None, owner="o", scopes=frozenset({"read"}), rate_limit_per_minute=limit)
    admitted = 0

    async def run() -> None:
        nonlocal admitted
        now = 6000.0  # the start of a window
        for n in range(requests):
            limiter = processes[n % 2]
            wait = limiter.decide_locally(who, now)
            if wait is None:
                wait = await limiter.count(counters, who, now)  # type: ignore[arg-type]
            admitted += not wait
            now += step_s

    asyncio.run(run())
    return admitted, counters


def test_batched_limiter_is_exact_for_small_limits() -> None:
    admitted, _ = drive(limit=5, requests=20, step_s=0.01)
    assert admitted == 5


def test_batched_limiter_bounds_overshoot_and_saves_round_trips() -> None:
    # 1,000 requests in 10 s from two processes against a limit of 600 a minute.
    admitted, counters = drive(limit=600, requests=1000, step_s=0.01)
    assert 600 - 60 <= admitted <= 600 + 100  # at most a second of the other process
    assert counters.round_trips < 1000 / 4  # most requests never touched the database
    # Every request is eventually counted in the shared table (refused ones too).
    assert sum(counters.hits.values()) <= 1000


def test_requests_that_miss_a_key_together_share_one_lookup() -> None:
    import asyncio

    from api.auth import Checked, KeyCache

    cache = KeyCache(ttl_s=10)
    lookups = 0

    async def look_up() -> Checked:
        nonlocal lookups
        lookups += 1
        await asyncio.sleep(0.01)  # the query
        return "The API key was revoked.", None

    async def burst() -> list[Checked]:
        return await asyncio.gather(*(cache.load("cw_key", look_up) for _ in range(50)))

    answers = asyncio.run(burst())
    assert lookups == 1 and {answer[0] for answer in answers} == {"The API key was revoked."}
    asyncio.run(burst())  # the lookup finished: a later miss looks up again
    assert lookups == 2
