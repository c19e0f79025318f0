import argparse
from datetime import timedelta

import pytest

from api.keys_cli import parse_duration
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
