"""Fixtures. Integration and e2e tests run against the real PostgreSQL, RabbitMQ, a Milvus Lite
server and the real model, with real worker and API processes; the in-process API tests
(tests/api) against the real PostgreSQL. Each run gets its own database, vhost, collection and
ports, and removes them afterwards. The building blocks are in tests/support."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack
from tests.support.reports import FAULT_REPORT, FUZZ_REPORT
from tests.support.stack import RUN_ID, Names, exported, isolated_env, running_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        elif "/faults/" in path:
            item.add_marker(pytest.mark.faults)
        elif "/contract/" in path:
            item.add_marker(pytest.mark.contract)
        elif "/tests/api/" in path:
            item.add_marker(pytest.mark.api)
    # The fuzzer fills the catalogue with made-up courses, so it runs after the tests that read
    # it; fault injection restarts shared services (RabbitMQ), so it runs last of all.
    items.sort(key=lambda item: ("/faults/" in str(item.path), "/contract/" in str(item.path)))


@pytest.fixture(scope="session")
def names() -> Names:
    return Names(RUN_ID)


@pytest.fixture(scope="session")
def stack_env(names: Names) -> Iterator[dict[str, str]]:
    """Settings for this run's processes, pointing at this run's own names (exported too, for
    in-process tests that build Settings() themselves)."""
    with isolated_env(names) as env, exported(env):
        yield env


@pytest.fixture(scope="session")
def stack(stack_env: dict[str, str]) -> Iterator[LocalStack]:
    # Several API processes share the one Milvus server.
    with running_stack(stack_env, "test", api_workers=2) as local:
        yield local


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    """A client with this run's admin key."""
    with stack.client(timeout=60) as client:
        yield client


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FUZZ_REPORT:
        terminalreporter.section("API fuzzing (schemathesis)")
        for line in FUZZ_REPORT:
            terminalreporter.write_line(line)
    if FAULT_REPORT:
        terminalreporter.section("fault injection")
        for line in FAULT_REPORT:
            terminalreporter.write_line(line)
