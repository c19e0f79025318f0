"""Sending one webhook delivery: the body signed, no redirects, the destination checked first."""

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from shared.settings import Settings
from shared.webhooks.guard import check_destination

# `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed with the endpoint's secret>`
SIGNATURE_HEADER = "Coursewise-Signature"
EVENT_HEADER = "Coursewise-Event"
DELIVERY_HEADER = "Coursewise-Delivery"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def send(
    url: str, secret: str, event: str, delivery_id: str, body: bytes, settings: Settings
) -> tuple[int | None, str | None]:
    """(status code, None) when the receiver took it (2xx); else (code or None, why not).
    Raises ForbiddenDestination when the destination is not allowed (never retried)."""
    check_destination(url, settings)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "coursewise-webhooks/1",
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
    }
    try:
        # No proxies from the environment, no redirects: the request goes where it was checked.
        with httpx.Client(
            timeout=settings.webhook_timeout_s, follow_redirects=False, trust_env=False
        ) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    code = response.status_code
    if 200 <= code < 300:
        return code, None
    if 300 <= code < 400:
        return code, f"HTTP {code}: redirects are not followed"
    return code, f"HTTP {code}"
