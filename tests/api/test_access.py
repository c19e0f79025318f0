"""Who may call what, through the app in-process: 401, 403, 429 and their headers."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.catalog import course, unique_id
from tests.support.http import assert_error
from tests.support.inprocess import InProcessApi

pytestmark = pytest.mark.anyio


async def test_no_key_a_bad_key_and_another_scheme_are_401(inprocess: InProcessApi) -> None:
    async with inprocess.client() as anonymous:
        missing = await anonymous.get("/v1/courses")
        basic = await anonymous.get("/v1/courses", headers={"Authorization": "Basic dXNlcjpwdw=="})
    async with inprocess.client("cw_" + "x" * 43) as bogus:
        unknown = await bogus.get("/v1/courses")
    for response, reason in (
        (missing, "No API key"),
        (basic, "not a Bearer"),
        (unknown, "not valid"),
    ):
        error = assert_error(response, 401, "unauthenticated")
        assert error["details"][0]["loc"] == ["header", "authorization"]
        assert reason in error["message"]
        assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_and_revoked_keys_are_401(inprocess: InProcessApi) -> None:
    expired = await inprocess.new_key(["read"], expires_at=datetime.now(UTC) - timedelta(days=1))
    async with inprocess.client(expired) as client:
        error = assert_error(await client.get("/v1/courses"), 401, "unauthenticated")
    assert "expired" in error["message"]

    revoked = await inprocess.new_key(["read"])
    async with inprocess.client(inprocess.admin_key) as admin:
        listed = (await admin.get("/v1/admin/keys")).json()["items"]
        key_id = next(key["id"] for key in listed if revoked.startswith(key["prefix"]))
        assert (await admin.delete(f"/v1/admin/keys/{key_id}")).status_code in (200, 204)
    async with inprocess.client(revoked) as client:
        error = assert_error(await client.get("/v1/courses"), 401, "unauthenticated")
    assert "revoked" in error["message"]


async def test_a_key_without_the_scope_is_403_naming_it(inprocess: InProcessApi) -> None:
    reader = await inprocess.new_key(["read"])
    writer = await inprocess.new_key(["write"])
    async with inprocess.client(reader) as client:
        refused = await client.post("/v1/courses", json=course(unique_id()))
        assert (await client.get("/v1/courses", params={"limit": 1})).status_code == 200
        admin_only = await client.get("/v1/admin/keys")
    async with inprocess.client(writer) as client:
        read_refused = await client.get("/v1/courses")
    for response, scope in ((refused, "write"), (admin_only, "admin"), (read_refused, "read")):
        assert_error(response, 403, "insufficient_scope")
        assert response.headers["www-authenticate"] == (
            f'Bearer error="insufficient_scope", scope="{scope}"'
        )


async def test_over_the_rate_limit_is_429_with_retry_after(inprocess: InProcessApi) -> None:
    limited = await inprocess.new_key(["read"], rate_limit_per_minute=2)
    async with inprocess.client(limited) as client:
        answers = [await client.get("/v1/courses", params={"limit": 1}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    error = assert_error(answers[2], 429, "rate_limited")
    assert "2 requests per minute" in error["message"]
    wait = int(answers[2].headers["retry-after"])
    # Until the sliding window (this minute and what weighs of the last) lets one more in.
    assert 1 <= wait <= 120 and f"retry in {wait} s" in error["message"]
