"""Fixtures of the bench's own tests. The one that needs a stack gets one of its own (its own
database, vhost, collection and ports, from the same building blocks as the test suite's), so
the service's tests never import the bench and the bench's tests never share a stack with them.
Module-scoped: the exported settings are the suite's again before any later test runs."""

from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import LocalStack
from tests.support.stack import RUN_ID, Names, exported, isolated_env, running_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with (
        isolated_env(Names(f"{RUN_ID}b")) as env,
        exported(env),
        running_stack(env, "bench-test") as local,
    ):
        yield local


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with stack.client(timeout=60) as client:
        yield client
