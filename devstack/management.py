"""Command 1's RabbitMQ management UI: enabled when it can be, and said so when it cannot.

The UI is a RabbitMQ plugin. On a broker on this machine with `rabbitmq-plugins` on PATH the
launcher enables it (idempotent, `--online`: no restart) and waits for its port; a broker
elsewhere, or one that refuses, gets a line saying why and the command that enables it.
"""

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

UI_PORT = 15672
ENABLE = ["rabbitmq-plugins", "enable", "--online", "rabbitmq_management"]
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Outcome:
    url: str | None
    note: str


def _enable() -> tuple[bool, str]:
    if shutil.which(ENABLE[0]) is None:
        return False, f"`{ENABLE[0]}` is not on PATH"
    try:
        result = subprocess.run(ENABLE, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"`{' '.join(ENABLE)}` failed: {exc}"
    if result.returncode != 0:
        why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return False, f"`{' '.join(ENABLE)}` failed: {why[0][:200]}"
    return True, "enabled"


def management_ui(
    broker_host: str,
    port_open: Callable[[str, int], bool],
    enable: Callable[[], tuple[bool, str]] = _enable,
    wait_s: float = 20.0,
) -> Outcome:
    url = f"http://{broker_host}:{UI_PORT}"
    if port_open(broker_host, UI_PORT):
        return Outcome(url, "guest/guest")
    how = f"enable it with `{' '.join(ENABLE)}`"
    if broker_host not in LOCAL_HOSTS:
        return Outcome(None, f"not reachable on {broker_host}:{UI_PORT}; {how} on the broker")
    enabled, why = enable()
    if not enabled:
        return Outcome(None, f"could not be enabled ({why}); {how}")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if port_open(broker_host, UI_PORT):
            return Outcome(url, "guest/guest; enabled just now")
        time.sleep(0.5)
    return Outcome(None, f"enabled, but nothing answers on port {UI_PORT} yet; {how}")
