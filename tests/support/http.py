"""Reading the API's answers: accepted writes, their tasks, error bodies."""

import time
from typing import Any

import httpx


def wait_task(api: httpx.Client, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = api.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in ("succeeded", "failed"):
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {task['status']} after {timeout}s: {task}")
        time.sleep(0.2)


def accept(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status_url"] == f"/v1/tasks/{body['task_id']}"
    return str(body["task_id"])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["details"] and error["details"][0]["loc"], error
    return error
