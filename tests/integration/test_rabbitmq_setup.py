"""docker-compose's RabbitMQ setup script, run against the real broker's management API: the
application's user works in its own vhost and nowhere else, and cannot use the management UI."""

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from kombu import Connection

from devstack.stack import ROOT

MANAGEMENT = "http://127.0.0.1:15672/api"
ADMIN = ("guest", "guest")  # this machine's local broker; compose has no guest user


def _management_up() -> bool:
    try:
        return httpx.get(f"{MANAGEMENT}/overview", auth=ADMIN, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def management() -> None:
    if not _management_up():
        subprocess.run(
            ["rabbitmq-plugins", "enable", "rabbitmq_management"], check=True, capture_output=True
        )
        deadline = time.monotonic() + 60
        while not _management_up():
            assert time.monotonic() < deadline, "the RabbitMQ management API did not come up"
            time.sleep(1)


@pytest.fixture
def app_account(management: None) -> Iterator[tuple[str, str, str]]:
    run = uuid.uuid4().hex[:8]
    user, password, vhost = f"cw_app_{run}", f"pw-{uuid.uuid4().hex}", f"cw_setup_{run}"
    env = {
        **os.environ,
        "RABBITMQ_API": MANAGEMENT,
        "RABBITMQ_ADMIN_USER": ADMIN[0],
        "RABBITMQ_ADMIN_PASSWORD": ADMIN[1],
        "RABBITMQ_APP_USER": user,
        "RABBITMQ_APP_PASSWORD": password,
        "RABBITMQ_VHOST": vhost,
    }
    script = ROOT / "infra/rabbitmq/setup.sh"
    try:
        for _ in range(2):  # idempotent: a second run changes nothing and succeeds
            result = subprocess.run(
                ["sh", str(script)], env=env, capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stdout + result.stderr
        yield user, password, vhost
    finally:
        httpx.delete(f"{MANAGEMENT}/users/{user}", auth=ADMIN)
        httpx.delete(f"{MANAGEMENT}/vhosts/{vhost}", auth=ADMIN)


def test_app_user_is_confined_to_its_vhost(app_account: tuple[str, str, str]) -> None:
    user, password, vhost = app_account
    with Connection(f"amqp://{user}:{password}@127.0.0.1:5672/{vhost}") as own:
        queue = own.SimpleQueue("coursewise.setup-check")
        queue.put({"ok": True})
        assert queue.get(timeout=5).payload == {"ok": True}
        queue.close()
    elsewhere = Connection(f"amqp://{user}:{password}@127.0.0.1:5672//")
    with pytest.raises(Exception, match=r"(?i)access|refused|not_allowed"):
        elsewhere.ensure_connection(max_retries=1)
    elsewhere.release()
    permissions = httpx.get(f"{MANAGEMENT}/users/{user}/permissions", auth=ADMIN).json()
    assert [p["vhost"] for p in permissions] == [vhost]


def test_app_user_cannot_use_the_management_api(app_account: tuple[str, str, str]) -> None:
    user, password, _ = app_account
    response = httpx.get(f"{MANAGEMENT}/overview", auth=(user, password))
    assert response.status_code == 401
    info = httpx.get(f"{MANAGEMENT}/users/{user}", auth=ADMIN).json()
    assert info["tags"] in ([], "")
