"""API keys made through the admin API, remembered so a test can look for them in the logs."""

import uuid
from typing import Any

import httpx

# Every secret the tests handle, so the last test can look for them in the logs.
SEEN_SECRETS: list[str] = []


def new_key(api: httpx.Client, scopes: list[str], **fields: Any) -> dict[str, Any]:
    body = {"name": f"test-{uuid.uuid4().hex[:8]}", "scopes": scopes, **fields}
    response = api.post("/v1/admin/keys", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    SEEN_SECRETS.append(created["key"])
    return created
