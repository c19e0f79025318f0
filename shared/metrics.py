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
    Gauge,
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
RECOMMENDATIONS_DEGRADED = Counter(
    "coursewise_recommendations_degraded",
    "Recommendation reads answered from PostgreSQL alone, by surface (recommendations: "
    "popularity; similar: co-enrolment and shared skills) and by why the vector index was left "
    "out (timeout, error, circuit_open)",
    ["surface", "reason"],
)
SEARCH_DEGRADED = Counter(
    "coursewise_search_degraded",
    "Searches answered from PostgreSQL alone, by why the semantic side was left out "
    "(timeout, error, circuit_open)",
    ["reason"],
)

# 1 for what computes this process's vectors; processes that chose differently show one series
# each (livemax: a process that exited drops out).
EMBEDDING_BACKEND = Gauge(
    "coursewise_embedding_backend_info",
    "The embedding runtime and precision in use, and how the precision was chosen "
    "(calibrated, cached, forced, only, over_budget)",
    ["backend", "precision", "source"],
    multiprocess_mode="livemax",
)


def observe_embedding_choice(backend: str, precision: str, source: str) -> None:
    EMBEDDING_BACKEND.labels(backend, precision, source).set(1)


# Online evaluation: what served lists showed, and what learners then did with it. `list` is
# recommendations or similar; `model` the strategy that made the list (hybrid, interests,
# popular, similar); `reason` the reason code the course was shown with (which model put it
# there). A click is an interaction of type view citing the list.
RECOMMENDATION_IMPRESSIONS = Counter(
    "coursewise_recommendation_impressions",
    "Courses shown in served lists, by list, model and reason",
    ["list", "model", "reason"],
)
RECOMMENDATION_OUTCOMES = Counter(
    "coursewise_recommendation_interactions",
    "Accepted interactions citing a served list (recommendation_id) with a course of it, by "
    "list, model, reason and interaction type (view = click, enroll = enrolment)",
    ["list", "model", "reason", "type"],
)
RECOMMENDATION_UNATTRIBUTED = Counter(
    "coursewise_recommendation_unattributed",
    "Accepted interactions citing a recommendation_id that could not be attributed, by why "
    "(unknown_list: no such list, or pruned; not_in_list: the course was not in it)",
    ["why"],
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


# The alarm's inputs (infra/prometheus/alerts.yml names them; a unit test checks they agree).
OLDEST_QUEUED_AGE = "coursewise_oldest_queued_task_age_seconds"
QUEUED_TOO_LONG = "coursewise_tasks_queued_too_long"


@dataclass
class StateSnapshot:
    """Gauges read from PostgreSQL and RabbitMQ at scrape time (None: that source failed)."""

    queue_messages: dict[str, int] = field(default_factory=dict)
    queue_consumers: dict[str, int] = field(default_factory=dict)
    tasks_by_status: dict[str, int] | None = None
    oldest_queued_age_s: float | None = None
    queued_too_long: int = 0
    index_lag: dict[str, int] | None = None
    # Per queue, from the ledger: (queued tasks, tasks applied per second over the last minute).
    backlog: dict[str, tuple[int, float]] | None = None
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
                OLDEST_QUEUED_AGE,
                "Age of the oldest task still queued (0 when none is)",
                value=state.oldest_queued_age_s or 0.0,
            )
            yield GaugeMetricFamily(
                QUEUED_TOO_LONG,
                "Tasks queued longer than COURSEWISE_QUEUED_ALERT_AFTER_S (the alarm: accepted "
                "writes nobody is applying)",
                value=state.queued_too_long,
            )
        if state.backlog is not None:
            queued = GaugeMetricFamily(
                "coursewise_backlog_tasks",
                "Tasks queued in the ledger, by the queue that carries them",
                labels=["queue"],
            )
            rate = GaugeMetricFamily(
                "coursewise_apply_rate_tasks_per_second",
                "Tasks finished per second over the last minute, by queue",
                labels=["queue"],
            )
            drain = GaugeMetricFamily(
                "coursewise_backlog_drain_seconds",
                "Expected seconds to apply the queued tasks at the measured apply rate "
                "(+Inf when tasks are queued and none was applied in the last minute)",
                labels=["queue"],
            )
            for queue, (count, per_s) in state.backlog.items():
                queued.add_metric([queue], count)
                rate.add_metric([queue], per_s)
                seconds = 0.0 if count == 0 else count / per_s if per_s > 0 else float("inf")
                drain.add_metric([queue], seconds)
            yield queued
            yield rate
            yield drain
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
