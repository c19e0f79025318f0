"""Prometheus metrics of every process, and the state gauges computed when /metrics is scraped.

The API runs several uvicorn processes and a worker forks children, so counters and histograms
are written to files in PROMETHEUS_MULTIPROC_DIR (one directory per process group, created empty
by whoever starts the group) and summed at scrape time. Without that variable each process only
reports itself, which is right for a single process.
"""

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):
    # prometheus_client writes its files there from the first observation on.
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["CONTENT_TYPE_LATEST", "render"]

HTTP_LATENCY = Histogram(
    "coursewise_http_request_duration_seconds",
    "API request latency by route template, method and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TASKS = Counter(
    "coursewise_tasks",
    "Tasks run by workers, by type and outcome",
    ["type", "outcome"],
)
TASK_DURATION = Histogram(
    "coursewise_task_duration_seconds",
    "Time a worker spent on one task run, by type and outcome",
    ["type", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
TASKS_CANCELLED = Counter(
    "coursewise_tasks_cancelled",
    "Queued tasks cancelled through the API, by type",
    ["type"],
)
EMBED_BATCH = Histogram(
    "coursewise_embedding_batch_size",
    "Courses embedded per call of the model while indexing",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
EMBEDDED = Counter("coursewise_embedded_courses", "Courses embedded while indexing")
EMBED_SECONDS = Counter(
    "coursewise_embedding_seconds",
    "Seconds spent embedding while indexing (throughput: rate of "
    "coursewise_embedded_courses_total over rate of this)",
)
SEARCH_DEGRADED = Counter(
    "coursewise_search_degraded",
    "Searches answered from PostgreSQL alone, by why the semantic side was left out "
    "(timeout, error, circuit_open)",
    ["reason"],
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(method, route, str(status)).observe(seconds)


def observe_task(type: str, outcome: str, seconds: float) -> None:
    TASKS.labels(type, outcome).inc()
    TASK_DURATION.labels(type, outcome).observe(seconds)


def observe_cancelled(type: str) -> None:
    TASKS_CANCELLED.labels(type).inc()


def observe_embedding(batch: int, seconds: float) -> None:
    if batch <= 0:
        return
    EMBED_BATCH.observe(batch)
    EMBEDDED.inc(batch)
    EMBED_SECONDS.inc(seconds)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def process_registry() -> CollectorRegistry:
    """Everything this process group recorded: the sum over its processes when multiprocess."""
    if not multiprocess_enabled():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def mark_process_dead(pid: int | None = None) -> None:
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid or os.getpid())


@dataclass
class StateSnapshot:
    """Gauges read from PostgreSQL and RabbitMQ at scrape time (None: that source failed)."""

    queue_messages: dict[str, int] = field(default_factory=dict)
    queue_consumers: dict[str, int] = field(default_factory=dict)
    tasks_by_status: dict[str, int] | None = None
    oldest_queued_age_s: float | None = None
    index_lag: dict[str, int] | None = None
    sources_up: dict[str, bool] = field(default_factory=dict)
    taken_at: float = field(default_factory=time.time)


class _StateCollector(Collector):
    def __init__(self, state: StateSnapshot) -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        state = self.state
        up = GaugeMetricFamily(
            "coursewise_state_source_up",
            "1 if the scrape could read this source (postgres, rabbitmq), else 0",
            labels=["source"],
        )
        for source, ok in state.sources_up.items():
            up.add_metric([source], 1.0 if ok else 0.0)
        yield up
        depth = GaugeMetricFamily(
            "coursewise_queue_messages",
            "Messages ready in a RabbitMQ queue",
            labels=["queue"],
        )
        for queue, count in state.queue_messages.items():
            depth.add_metric([queue], count)
        yield depth
        consumers = GaugeMetricFamily(
            "coursewise_queue_consumers", "Consumers of a RabbitMQ queue", labels=["queue"]
        )
        for queue, count in state.queue_consumers.items():
            consumers.add_metric([queue], count)
        yield consumers
        if state.tasks_by_status is not None:
            ledger = GaugeMetricFamily(
                "coursewise_ledger_tasks",
                "Tasks in the ledger that are not finished, by status",
                labels=["status"],
            )
            for status, count in state.tasks_by_status.items():
                ledger.add_metric([status], count)
            yield ledger
            yield GaugeMetricFamily(
                "coursewise_oldest_queued_task_age_seconds",
                "Age of the oldest task still queued (0 when none is)",
                value=state.oldest_queued_age_s or 0.0,
            )
        if state.index_lag is not None:
            lag = GaugeMetricFamily(
                "coursewise_index_lag_courses",
                "Courses whose Milvus entry lags PostgreSQL, by index state (pending, failed)",
                labels=["state"],
            )
            for index_state, count in state.index_lag.items():
                lag.add_metric([index_state], count)
            yield lag


def render(state: StateSnapshot | None = None) -> bytes:
    """The exposition text: this process group's metrics, plus the state gauges if given."""
    if state is None:
        return generate_latest(process_registry())
    registry = CollectorRegistry()
    if multiprocess_enabled():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistryProxy())
    registry.register(_StateCollector(state))
    return generate_latest(registry)


class _DefaultRegistryProxy(Collector):
    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()
