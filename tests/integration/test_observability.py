"""Metrics and request ids, against the running stack (API with two processes, a worker)."""

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from devstack.stack import ROOT, LocalStack
from shared.db import create_engine, create_sessionmaker
from shared.ledger.models import Task
from shared.ledger.repository import TaskRepository
from shared.settings import Settings
from tests.support.http import accept, wait_task
from tests.support.metrics import scrape, value


def course(course_id: str) -> dict[str, Any]:
    return {
        "id": course_id,
        "title": "Observability for operators",
        "description": "Metrics, logs and dashboards that show what a service is doing.",
        "skills": ["prometheus", "grafana"],
    }


def test_api_metrics_sum_every_api_process_and_label_routes_by_template(
    stack: LocalStack, api: httpx.Client
) -> None:
    before = scrape(f"{stack.api_url}/metrics")
    # Fresh connections, so the kernel spreads them over both API processes.
    for _ in range(20):
        assert httpx.get(f"{stack.api_url}/healthz", timeout=10).status_code == 200
    missing = f"obs-missing-{uuid.uuid4().hex[:8]}"
    assert api.get(f"/v1/courses/{missing}").status_code == 404
    after = scrape(f"{stack.api_url}/metrics")

    count = "coursewise_http_request_duration_seconds_count"
    health = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(after, count, **health) - value(before, count, **health) == 20
    by_id = {"method": "GET", "route": "/v1/courses/{course_id}", "status": "404"}
    assert value(after, count, **by_id) - value(before, count, **by_id) == 1
    # The raw path (with the id) never becomes a label.
    assert not any(missing in str(labels) for _, labels in after)


def test_write_moves_worker_task_metrics_and_state_gauges(
    stack: LocalStack, api: httpx.Client
) -> None:
    assert stack.worker_metrics_port is not None
    worker_url = f"http://127.0.0.1:{stack.worker_metrics_port}/metrics"
    before = scrape(worker_url)
    task = wait_task(api, accept(api.post("/v1/courses", json=course(f"obs-{uuid.uuid4().hex}"))))
    assert task["status"] == "succeeded"

    after = scrape(worker_url)
    tasks = {"type": "course.upsert", "outcome": "succeeded"}
    assert (
        value(after, "coursewise_tasks_total", **tasks)
        - value(before, "coursewise_tasks_total", **tasks)
        >= 1
    )
    duration = "coursewise_task_duration_seconds_count"
    assert value(after, duration, **tasks) > value(before, duration, **tasks)
    embedded = "coursewise_embedded_courses_total"
    assert value(after, embedded) - value(before, embedded) >= 1
    assert value(after, "coursewise_embedding_batch_size_count") > value(
        before, "coursewise_embedding_batch_size_count"
    )

    state = scrape(f"{stack.api_url}/metrics")
    assert value(state, "coursewise_state_source_up", source="postgres") == 1
    assert value(state, "coursewise_state_source_up", source="rabbitmq") == 1
    assert ("coursewise_queue_messages", frozenset({("queue", "coursewise.courses")})) in state
    assert value(state, "coursewise_queue_consumers", queue="coursewise.courses") >= 1
    assert ("coursewise_index_lag_courses", frozenset({("state", "pending")})) in state
    assert ("coursewise_oldest_queued_task_age_seconds", frozenset()) in state
    # Backpressure: the backlog of the write queue and when it drains at the measured rate.
    courses = {"queue": "coursewise.courses"}
    assert value(state, "coursewise_apply_rate_tasks_per_second", **courses) > 0
    backlog = value(state, "coursewise_backlog_tasks", **courses)
    drain = value(state, "coursewise_backlog_drain_seconds", **courses)
    assert (backlog == 0 and drain == 0) or 0 < drain < float("inf")
    # What computes the vectors, in the worker and in the API.
    for metrics in (after, state):
        info = [labels for name, labels in metrics if name == "coursewise_embedding_backend_info"]
        assert info and all(dict(labels)["backend"] == "openvino" for labels in info), info
    # The alarm's count (infra/prometheus/alerts.yml), read from the ledger at scrape time.
    assert ("coursewise_tasks_queued_too_long", frozenset()) in state


def worker_lines(stack: LocalStack) -> list[dict[str, Any]]:
    lines = []
    for line in (stack.var_dir / "worker.log").read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            lines.append(entry)
    return lines


def test_a_writes_request_id_follows_it_into_the_workers_logs(
    stack: LocalStack, api: httpx.Client
) -> None:
    request_id = f"ops-test-{uuid.uuid4().hex}"
    response = api.post(
        "/v1/courses", json=course(f"obs-{uuid.uuid4().hex}"), headers={"X-Request-ID": request_id}
    )
    assert response.headers["X-Request-ID"] == request_id
    task_id = accept(response)
    assert wait_task(api, task_id)["status"] == "succeeded"

    deadline = time.monotonic() + 10
    while True:
        carried = [e for e in worker_lines(stack) if e.get("request_id") == request_id]
        if any(task_id in e["message"] for e in carried) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert any(task_id in entry["message"] for entry in carried), carried
    # Other tasks' lines do not carry it.
    others = [e for e in worker_lines(stack) if task_id not in e["message"]]
    assert all(e.get("request_id") != request_id for e in others if "task" in e["message"])


def test_a_request_id_is_generated_when_missing_or_unsafe(api: httpx.Client) -> None:
    generated = api.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32
    unsafe = api.get("/healthz", headers={"X-Request-ID": "two words\tand a tab"})
    assert unsafe.headers["X-Request-ID"] not in ("two words\tand a tab", generated)
    assert len(unsafe.headers["X-Request-ID"]) == 32


def test_every_metric_on_the_grafana_dashboard_is_exported(
    stack: LocalStack, api: httpx.Client
) -> None:
    # After at least one write, so every labelled series exists.
    assert wait_task(api, accept(api.post("/v1/courses", json=course("obs-dashboard"))))
    # And a served list, cited once with one of its courses and once with an unknown id.
    taken = {"user_id": "obs-learner", "course_id": "obs-dashboard", "type": "enroll"}
    assert wait_task(api, accept(api.post("/v1/interactions", json=[taken])))
    page = api.get("/v1/users/obs-someone/recommendations").json()
    shown = page["items"][0]["id"]
    cited = [
        {"user_id": "obs-someone", "course_id": shown, "type": "view",
         "recommendation_id": page["recommendation_id"]},
        {"user_id": "obs-someone", "course_id": shown, "type": "view",
         "recommendation_id": "rec_unknown"},
    ]  # fmt: skip
    assert wait_task(api, accept(api.post("/v1/interactions", json=cited)))
    dashboard = json.loads(
        (ROOT / "infra" / "grafana" / "dashboards" / "coursewise.json").read_text()
    )
    wanted = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bcoursewise_[a-z_]+", target["expr"])
    }
    exported = {
        name
        for url in (
            f"{stack.api_url}/metrics",
            f"http://127.0.0.1:{stack.worker_metrics_port}/metrics",
        )
        for name, _ in scrape(url)
    }
    assert wanted and wanted <= exported, sorted(wanted - exported)


def test_a_write_queued_past_the_threshold_sets_off_the_alarm(stack: LocalStack) -> None:
    """coursewise_tasks_queued_too_long counts it, and the oldest age covers it (the alert
    rules' inputs)."""

    async def scenario() -> tuple[int, float | None]:
        engine = create_engine(Settings())
        sessionmaker = create_sessionmaker(engine)
        try:
            # One transaction, rolled back: the live sweeper and workers never see the row.
            async with sessionmaker() as session:
                repo = TaskRepository(session)
                task = await repo.create(type="course.upsert", payload={"items": []}, received=0)
                await session.execute(
                    update(Task)
                    .where(Task.id == task.id)
                    .values(enqueued_at=datetime.now(UTC) - timedelta(hours=5))
                )
                _, oldest, too_long = await repo.unfinished_stats(queued_too_long_s=4 * 3600)
                await session.rollback()
            return too_long, oldest
        finally:
            await engine.dispose()

    too_long, oldest = asyncio.run(scenario())
    assert too_long >= 1
    assert oldest is not None and oldest > 4 * 3600  # now() is the transaction's start
