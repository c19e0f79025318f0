"""Access control and abuse limits, with real keys against the real service."""

import asyncio
import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from devstack.stack import LocalStack, free_port
from shared.db import create_engine, create_sessionmaker, transaction
from shared.ledger.models import Task
from shared.ledger.repository import TaskRepository
from shared.settings import Settings
from tests.support.catalog import course, unique_id
from tests.support.http import accept, assert_error, wait_task
from tests.support.keys import SEEN_SECRETS, new_key


def as_key(stack: LocalStack, key: str) -> httpx.Client:
    return stack.client(key=key)


# --- authentication ---------------------------------------------------------------------------


def test_no_key_bad_key_and_wrong_scheme_are_401(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=30) as anonymous:
        missing = anonymous.get("/v1/courses")
        basic = anonymous.get("/v1/courses", headers={"Authorization": "Basic dXNlcjpwdw=="})
    bogus = "cw_" + "x" * 43
    SEEN_SECRETS.append(bogus)
    with as_key(stack, bogus) as client:
        unknown = client.get("/v1/courses")
    for response in (missing, basic, unknown):
        error = assert_error(response, 401, "unauthenticated")
        assert error["details"][0]["loc"] == ["header", "authorization"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert "No API key" in missing.json()["error"]["message"]


def test_health_and_docs_need_no_key(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=30) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        schema = anonymous.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_scopes_are_enforced(api: httpx.Client, stack: LocalStack) -> None:
    reader = new_key(api, ["read"])["key"]
    writer = new_key(api, ["write"])["key"]
    course_id = unique_id("scope")
    with as_key(stack, reader) as client:
        assert client.get("/v1/courses", params={"limit": 1}).status_code == 200
        assert client.get("/v1/search", params={"q": "bread"}).status_code == 200
        denied = client.post("/v1/courses", json=course(course_id))
        assert_error(denied, 403, "insufficient_scope")
        assert 'scope="write"' in denied.headers["www-authenticate"]
        assert_error(client.get("/v1/admin/keys"), 403, "insufficient_scope")
    with as_key(stack, writer) as client:
        task_id = accept(client.post("/v1/courses", json=course(course_id)))
        # A write key follows its own tasks, but reading the catalogue takes `read`.
        assert client.get(f"/v1/tasks/{task_id}").status_code == 200
        assert_error(client.get(f"/v1/courses/{course_id}"), 403, "insufficient_scope")
        assert_error(client.post(f"/v1/tasks/{task_id}/retry"), 403, "insufficient_scope")
        assert_error(
            client.post("/v1/admin/keys", json={"name": "x", "scopes": ["admin"]}),
            403,
            "insufficient_scope",
        )
    assert wait_task(api, task_id)["status"] == "succeeded"


def test_key_is_shown_once_and_stored_only_as_a_hash(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    created = new_key(api, ["read"], owner="hash-check")
    secret = created["key"]
    assert secret.startswith("cw_") and len(secret) >= 40
    assert secret.startswith(created["prefix"])
    listed = api.get("/v1/admin/keys").json()["items"]
    mine = next(key for key in listed if key["id"] == created["id"])
    assert "key" not in mine and mine["owner"] == "hash-check"
    assert secret not in str(listed)

    async def stored_row() -> dict[str, Any]:
        engine = create_engine(Settings())
        try:
            async with engine.connect() as connection:
                row = (
                    (
                        await connection.execute(
                            text("SELECT * FROM api_keys WHERE id = :id"), {"id": created["id"]}
                        )
                    )
                    .mappings()
                    .one()
                )
                return dict(row)
        finally:
            await engine.dispose()

    row = asyncio.run(stored_row())
    assert row["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in " ".join(str(value) for value in row.values())


def test_revoked_key_stops_working(api: httpx.Client, stack: LocalStack) -> None:
    created = new_key(api, ["read"])
    with as_key(stack, created["key"]) as client:
        assert client.get("/v1/courses", params={"limit": 1}).status_code == 200
        revoked = api.delete(f"/v1/admin/keys/{created['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        # Each API process trusts a checked key for api_key_cache_s (1 s in this suite).
        time.sleep(1.5)
        for _ in range(4):  # whichever API process answers
            response = client.get("/v1/courses", params={"limit": 1})
            assert_error(response, 401, "unauthenticated")
            assert "revoked" in response.json()["error"]["message"]
    assert_error(api.delete(f"/v1/admin/keys/{uuid.uuid4()}"), 404, "api_key_not_found")


def test_expired_key_stops_working(api: httpx.Client, stack: LocalStack) -> None:
    expires_at = datetime.now(UTC) + timedelta(seconds=3)
    created = new_key(api, ["read"], expires_at=expires_at.isoformat())
    with as_key(stack, created["key"]) as client:
        assert client.get("/v1/courses", params={"limit": 1}).status_code == 200
        time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.5)
        response = client.get("/v1/courses", params={"limit": 1})
    assert_error(response, 401, "unauthenticated")
    assert "expired" in response.json()["error"]["message"]


def test_cli_creates_lists_and_revokes_keys(stack: LocalStack) -> None:
    import json
    import subprocess
    import sys

    from devstack.stack import ROOT

    secret = stack.create_key("cli-made", ["read"], owner="cli-owner")
    SEEN_SECRETS.append(secret)
    env = stack._env()

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "keys", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return result.stdout

    listing = cli("list")
    line = next(line for line in listing.splitlines() if "name=cli-made" in line)
    assert secret not in listing and "owner=cli-owner" in line
    key_id = line.split()[0]
    with as_key(stack, secret) as client:
        assert client.get("/v1/courses", params={"limit": 1}).status_code == 200
        assert json.loads(cli("revoke", key_id))["revoked_at"]
        time.sleep(1.5)
        assert_error(client.get("/v1/courses"), 401, "unauthenticated")
    assert key_id not in cli("list") and key_id in cli("list", "--include-revoked")


# --- per-caller data --------------------------------------------------------------------------


def test_tasks_are_visible_only_to_their_owner(api: httpx.Client, stack: LocalStack) -> None:
    owner_a = f"owner-a-{uuid.uuid4().hex[:6]}"
    first = new_key(api, ["write"], owner=owner_a)["key"]
    second = new_key(api, ["read"], owner=owner_a)["key"]  # a rotated key of the same owner
    stranger = new_key(api, ["read", "write"])["key"]
    with as_key(stack, first) as client:
        task_id = accept(client.post("/v1/courses", json=course(unique_id("own"))))
    with as_key(stack, second) as client:
        assert client.get(f"/v1/tasks/{task_id}").status_code == 200
        assert task_id in [t["task_id"] for t in client.get("/v1/tasks").json()["items"]]
    with as_key(stack, stranger) as client:
        # Not 403: the answer must not tell that the task exists.
        assert_error(client.get(f"/v1/tasks/{task_id}"), 404, "task_not_found")
        assert task_id not in [t["task_id"] for t in client.get("/v1/tasks").json()["items"]]
    assert api.get(f"/v1/tasks/{task_id}").status_code == 200  # admins see every task


def test_idempotency_keys_are_per_owner(api: httpx.Client, stack: LocalStack) -> None:
    one, other = new_key(api, ["write"])["key"], new_key(api, ["write"])["key"]
    body = course(unique_id("idem"))
    headers = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    with as_key(stack, one) as client:
        mine = accept(client.post("/v1/courses", json=body, headers=headers))
        assert accept(client.post("/v1/courses", json=body, headers=headers)) == mine
    with as_key(stack, other) as client:
        theirs = accept(client.post("/v1/courses", json=body, headers=headers))
    assert theirs != mine


# --- limits -----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(api: httpx.Client, stack: LocalStack) -> None:
    limited = new_key(api, ["read"], rate_limit_per_minute=5)["key"]
    with as_key(stack, limited) as client:
        statuses = [client.get("/v1/courses", params={"limit": 1}) for _ in range(7)]
    assert [r.status_code for r in statuses[:5]] == [200] * 5
    refused = statuses[-1]
    error = assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 120  # window end + fade-out
    assert "5 requests per minute" in error["message"]
    # Other callers are not affected.
    assert api.get("/v1/courses", params={"limit": 1}).status_code == 200


def test_oversized_bodies_are_refused_before_reading(api: httpx.Client) -> None:
    big = course(unique_id("big"), description="x" * (2 * 1024 * 1024))
    assert_error(api.post("/v1/courses", json=big), 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"id": "chunked:1", "title": "t", "description": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    response = api.post(
        "/v1/courses", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


def test_text_fields_and_limits_are_bounded(api: httpx.Client) -> None:
    long_title = api.post("/v1/courses", json=course(unique_id("long"), title="t" * 301))
    error = assert_error(long_title, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "title"]
    for path in ("/v1/search?q=bread&limit=51", "/v1/courses?limit=101"):
        error = assert_error(api.get(path), 422, "validation_error")
        assert error["details"][0]["loc"] == ["query", "limit"]


@pytest.fixture(scope="module")
def restricted(stack: LocalStack, stack_env: dict[str, str]) -> Iterator[LocalStack]:
    """A second API process on the same stores, with public reads on and tiny caps."""
    env = {
        **stack_env,
        "COURSEWISE_PUBLIC_READS": "true",
        "COURSEWISE_ANONYMOUS_RATE_LIMIT_PER_MINUTE": "8",
        "COURSEWISE_MAX_PENDING_TASKS_PER_OWNER": "1",
    }
    other = LocalStack(env=env, var_dir=stack.var_dir / "restricted", api_port=free_port())
    with other.running():
        other.start_api()
        yield other


def test_public_reads_when_switched_on(restricted: LocalStack, api: httpx.Client) -> None:
    with httpx.Client(base_url=restricted.api_url, timeout=30) as anonymous:
        assert anonymous.get("/v1/courses", params={"limit": 1}).status_code == 200
        assert_error(anonymous.post("/v1/courses", json=course("x:1")), 401, "unauthenticated")
        assert_error(anonymous.get("/v1/tasks"), 401, "unauthenticated")
        # Anonymous callers are limited by address.
        statuses = [anonymous.get("/v1/courses", params={"limit": 1}) for _ in range(10)]
    refused = statuses[-1]
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1


def _pending_task(owner: str) -> uuid.UUID:
    async def create() -> uuid.UUID:
        engine = create_engine(Settings())
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                task = await TaskRepository(session).create(
                    type="course.upsert", payload={"items": []}, received=0, owner=owner
                )
                return task.id
        finally:
            await engine.dispose()

    return asyncio.run(create())


def _finish(task_id: uuid.UUID) -> None:
    async def finish() -> None:
        engine = create_engine(Settings())
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await session.execute(
                    update(Task).where(Task.id == task_id).values(status="succeeded")
                )
        finally:
            await engine.dispose()

    asyncio.run(finish())


def test_pending_task_cap_per_owner(restricted: LocalStack, api: httpx.Client) -> None:
    owner = f"busy-{uuid.uuid4().hex[:6]}"
    key = new_key(api, ["write"], owner=owner)["key"]
    waiting = _pending_task(owner)  # one unfinished task: this owner's whole allowance
    try:
        with as_key(restricted, key) as client:
            refused = client.post("/v1/courses", json=course(unique_id("cap")))
            assert_error(refused, 429, "too_many_pending_tasks")
            assert int(refused.headers["retry-after"]) >= 1
        other = new_key(api, ["write"])["key"]  # another owner still gets through
        with as_key(restricted, other) as client:
            accept(client.post("/v1/courses", json=course(unique_id("cap"))))
    finally:
        _finish(waiting)
    with as_key(restricted, key) as client:
        accept(client.post("/v1/courses", json=course(unique_id("cap"))))


# Last in the module: looks for every secret used above.
def test_keys_never_appear_in_logs(stack: LocalStack) -> None:
    assert SEEN_SECRETS
    logs = [path for path in stack.var_dir.rglob("*.log")]
    assert logs
    text_of_logs = "\n".join(path.read_text(errors="replace") for path in logs)
    leaked = [secret[:8] + "…" for secret in SEEN_SECRETS if secret in text_of_logs]
    assert not leaked
    assert stack.api_key and stack.api_key not in text_of_logs
