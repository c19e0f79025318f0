"""A RabbitMQ node of this run only: its own node name, AMQP, distribution and epmd ports, Erlang
cookie, data, log and config files, started from the machine's RabbitMQ installation and
removed afterwards. The fault suite and the soak stop it, kill it with SIGKILL and fill its
memory; none of that may reach the machine's broker, which other users share.

Every process it starts (epmd and the node) runs in a session of its own and is killed by its
pid at exit, whatever happened."""

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from devstack.stack import port_open

# The scripts themselves, not /usr/sbin's wrappers: those switch to the `rabbitmq` user and its
# cookie, which would address the machine's node.
RABBITMQ_SBIN = Path(os.environ.get("COURSEWISE_TEST_RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin"))


def available() -> bool:
    return (RABBITMQ_SBIN / "rabbitmq-server").exists() and shutil.which("epmd") is not None


def _free_ports(count: int, low: int = 20000, high: int = 45000) -> int:
    """The first of `count` consecutive free loopback ports, below 45000: RabbitMQ's CLI adds
    10000 to the distribution port for its own, so the range must stay clear of 65535."""
    for _ in range(200):
        first = random.randrange(low, high - count)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise RuntimeError("no free port range for the test broker")


class Broker:
    def __init__(self, run_id: str) -> None:
        self.node = f"coursewise-{run_id}@localhost"
        self.base = Path(tempfile.mkdtemp(prefix=f"coursewise-rabbitmq-{run_id}-"))
        self.amqp_port = _free_ports(1)
        self.dist_port = _free_ports(1)
        self.epmd_port = _free_ports(1)
        self.ctl_ports = _free_ports(5)
        self.server: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None
        home = self.base / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (self.base / "rabbitmq-env.conf").write_text("")  # not the machine's /etc one
        (self.base / "enabled_plugins").write_text("[].\n")  # no management/prometheus ports
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
            # A node this small would raise the disk alarm on a full /tmp before anything else.
            "disk_free_limit.absolute = 50MB\n"
        )
        self.env = {
            **os.environ,
            "HOME": str(home),  # the cookie: neither the machine's node's nor root's
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.ctl_ports),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.ctl_ports + 4),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
        }
        for name in ("ERL_FLAGS", "RABBITMQ_ENABLED_PLUGINS", "RABBITMQ_SERVER_START_ARGS"):
            self.env.pop(name, None)

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{vhost}"

    def ctl(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_SBIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> None:
        """Start the node (on the same data directory and ports as before, after a stop or a
        kill) and wait until it accepts AMQP connections."""
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 10
            while not port_open("127.0.0.1", self.epmd_port) and time.monotonic() < deadline:
                time.sleep(0.1)
        assert self.server is None or self.server.poll() is not None, "already running"
        with (self.base / "server.log").open("ab") as log:
            self.server = subprocess.Popen(
                [str(RABBITMQ_SBIN / "rabbitmq-server")],
                cwd=self.base,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"RabbitMQ node exited:\n{self.log_tail()}")
            if port_open("127.0.0.1", self.amqp_port):
                ready = self.ctl("await_startup", "--timeout", "30", check=False, timeout=40)
                if ready.returncode == 0:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"RabbitMQ node not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def beam_pid(self) -> int:
        """The Erlang VM's pid (the pid file it writes at start)."""
        return int((self.base / "rabbitmq.pid").read_text().strip())

    def stop(self, timeout: float = 120) -> None:
        """A graceful stop: the node closes its connections and syncs its queues first."""
        assert self.server is not None
        self.ctl("stop", timeout=timeout)
        self.server.wait(timeout)

    def kill(self) -> None:
        """SIGKILL to the VM and everything in its session: no goodbye to any client."""
        assert self.server is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        found = []
        for log in [self.base / "server.log", *sorted((self.base / "log").glob("*.log"))]:
            with contextlib.suppress(OSError):
                text = log.read_text(errors="replace").splitlines()
                found += [f"--- {log.name}", *text[-lines:]]
        return "\n".join(found)

    def close(self) -> None:
        """Kill the node and epmd by pid (no graceful stop: a broken node must not hold up the
        teardown) and remove the data directory."""
        for process in (self.server, self.epmd):
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)
        if os.environ.get("COURSEWISE_KEEP_TEST_LOGS") != "1":
            shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def own_broker(run_id: str) -> Iterator[Broker]:
    broker = Broker(run_id)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()
