"""The operators' dashboards in docker-compose.yml: no default credentials anywhere."""

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
RAW = (ROOT / "docker-compose.yml").read_text()


def test_rabbitmq_has_no_guest_user_and_the_app_its_own() -> None:
    settings = "\n".join(line for line in RAW.splitlines() if not line.lstrip().startswith("#"))
    assert "guest" not in settings.lower()
    env = SERVICES["rabbitmq"]["environment"]
    assert "RABBITMQ_DEFAULT_USER" in env and ":?" in env["RABBITMQ_DEFAULT_PASS"]
    broker = SERVICES["api"]["environment"]["COURSEWISE_BROKER_URL"]
    # The application connects as its own user, to its own vhost, not as the admin.
    assert broker.startswith("amqp://${RABBITMQ_APP_USER") and broker.endswith("/coursewise")
    setup = SERVICES["rabbitmq-setup"]
    assert any("setup.sh" in volume for volume in setup["volumes"])
    script = (ROOT / "infra/rabbitmq/setup.sh").read_text()
    assert '\\"tags\\": \\"\\"' in script  # no management tags for the app user


def test_flower_requires_a_password() -> None:
    env = SERVICES["flower"]["environment"]
    assert re.fullmatch(
        r"\$\{FLOWER_USER:-\w+\}:\$\{FLOWER_PASSWORD:\?[^}]+\}", env["FLOWER_BASIC_AUTH"]
    )


def test_dashboards_listen_on_localhost_only() -> None:
    for name in ("rabbitmq", "flower"):
        for port in SERVICES[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_every_secret_must_come_from_the_env_file() -> None:
    # ${NAME:?message} makes compose refuse to start without it; no secret has a default.
    for match in re.finditer(r"\$\{(\w*(PASSWORD|PASS|SECRET)\w*)([^}]*)\}", RAW):
        assert match[3].startswith(":?"), match[0]
    example = (ROOT / ".env.example").read_text()
    for name in set(re.findall(r"\$\{(\w*PASSWORD\w*):\?", RAW)):
        assert f"{name}=" in example, name


def test_env_file_is_never_committed() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False
    ).returncode
    assert ignored == 0
