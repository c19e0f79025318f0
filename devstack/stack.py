"""Starting and stopping the local stack as child processes: a Milvus Lite server, the API, a
worker, a training worker, beat, the sweeper and Flower; restarting one that exits or hangs
(`supervise`). Used by the run command, the test suite and the
benchmarks.

Every process is started in its own session and stopped by its pid (its process group), so
nothing we start outlives us: a stale Milvus Lite server on a reused port would silently split
traffic between two data directories.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from shared import liveness

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def endpoint(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or default_port


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # Healthy unless this says otherwise (a hang, not an exit: the heartbeat file went stale,
    # or the HTTP health check stopped answering).
    check: Callable[[], bool] | None = None
    failures: int = 0
    restarts: int = 0

    def alive(self) -> bool:
        return self.popen.poll() is None

    def hung(self, threshold: int = 3) -> bool:
        """Alive, but its liveness check failed `threshold` times in a row."""
        if self.check is None or not self.alive():
            return False
        self.failures = 0 if self.check() else self.failures + 1
        return self.failures >= threshold

    def kill(self) -> None:
        """SIGKILL, for a process that hangs: SIGTERM would wait on the very loop that is stuck
        (and a stopped process does not run its handler at all)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def stop(self, grace: float = 15.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LocalStack:
    env: dict[str, str]
    var_dir: Path
    api_port: int = 8000
    flower_port: int = 5555
    worker_metrics_port: int | None = None
    processes: list[Process] = field(default_factory=list)
    # An admin key made by `create_key` after prestart; sent by `client()`.
    api_key: str | None = None
    # A process whose heartbeat is older than this hangs (`supervise` restarts it). Generous:
    # this machine is often loaded, and a restart costs a worker its model load.
    liveness_max_age: float = 90.0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.env, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        # Every process runs this checkout's code, whichever checkout the venv was installed from.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def metrics_dir(self, name: str) -> Path:
        """An empty directory for the metric files of one process group (its processes' sums)."""
        path = self.var_dir / "metrics" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def liveness_dir(self, name: str) -> Path:
        return self.var_dir / "liveness" / name

    def spawn(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        liveness_max_age: float | None = None,
        check: Callable[[], bool] | None = None,
    ) -> Process:
        """Start a process. With `liveness_max_age`, it gets a heartbeat directory of its own
        and counts as hung when a heartbeat in it is older than that (shared.liveness)."""
        env = dict(env or {})
        if liveness_max_age is not None:
            directory = self.liveness_dir(name)
            shutil.rmtree(directory, ignore_errors=True)
            env["COURSEWISE_LIVENESS_DIR"] = str(directory)
            check = check or (lambda: not liveness.stale(directory, liveness_max_age))
        process = Process(name, self._popen(name, args, env), self.var_dir / f"{name}.log")
        process.args, process.env, process.check = args, env, check
        self.processes.append(process)
        return process

    def _popen(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        log = self.var_dir / f"{name}.log"
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                args,
                cwd=ROOT,
                env={**self._env(), **env},
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.var_dir / f"{name}.pid").write_text(str(popen.pid))
        return popen

    def restart(self, process: Process) -> None:
        """The same command again, in place of a process that exited or hangs."""
        if process.alive():
            process.kill()
        process.popen = self._popen(process.name, process.args, process.env)
        process.failures = 0
        process.restarts += 1

    def supervise(self) -> list[str]:
        """One look at every process: restart those that exited or hang. The names restarted
        (with why)."""
        restarted = []
        for process in self.processes:
            if process.name == "milvus":  # its data directory is ours to keep; never a hang
                continue
            why = "exited" if not process.alive() else "hung" if process.hung() else None
            if why is not None:
                restarted.append(f"{process.name} ({why})")
                self.restart(process)
        return restarted

    # --- components ------------------------------------------------------------------------
    def start_milvus(self, data_dir: Path, timeout: float = 60) -> Process:
        host, port = endpoint(self.env["COURSEWISE_MILVUS_URI"], 19530)
        stop_stale(self.var_dir / "milvus.pid")
        if port_open(host, port):
            raise RuntimeError(
                f"port {port} is already taken by another process: stop it, or set "
                "COURSEWISE_MILVUS_URI to use that Milvus instead"
            )
        args = [str(BIN / "milvus-lite"), "server", "--data-dir", str(data_dir)]
        process = self.spawn("milvus", [*args, "--host", host, "--port", str(port)])
        self._wait(process, lambda: port_open(host, port), timeout)
        return process

    def prestart(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "shared.prestart"],
            cwd=ROOT,
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"prestart failed:\n{result.stdout}\n{result.stderr}")

    def create_key(
        self, name: str, scopes: list[str], owner: str | None = None, rate_limit: int | None = None
    ) -> str:
        """A new API key in this stack's database (through the CLI); returns its secret."""
        args = [sys.executable, "-m", "cli.main", "keys", "create", "--name", name]
        args += [arg for scope in scopes for arg in ("--scope", scope)]
        if owner:
            args += ["--owner", owner]
        if rate_limit:
            args += ["--rate-limit", str(rate_limit)]
        result = subprocess.run(
            args, cwd=ROOT, env=self._env(), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"creating an API key failed:\n{result.stdout}\n{result.stderr}")
        return str(json.loads(result.stdout)["key"])

    def client(self, timeout: float = 30, key: str | None = None) -> httpx.Client:
        key = key or self.api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.api_url, timeout=timeout, headers=headers)

    def start_worker(
        self, name: str = "worker", concurrency: int = 1, metrics_port: int | None = None
    ) -> Process:
        queues = "coursewise.courses,coursewise.maintenance"
        env = {"PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir(name))}
        if metrics_port is not None:
            env["COURSEWISE_WORKER_METRICS_PORT"] = str(metrics_port)
        return self.spawn(
            name,
            [
                str(BIN / "celery"), "-A", "workers.celery_app", "worker", "-Q", queues,
                "-c", str(concurrency), "-n", f"{name}-{os.getpid()}@%h", "--loglevel=INFO",
                "--without-mingle", "--without-gossip",
            ],
            env,
            liveness_max_age=self.liveness_max_age,
        )  # fmt: skip

    def start_training_worker(self, name: str = "training-worker") -> Process:
        """The worker of the training queue (a retrain never waits behind, or delays, writes) and
        of webhook deliveries (a slow receiver never holds up a write either)."""
        process = self.spawn(
            name,
            [
                str(BIN / "celery"), "-A", "workers.celery_app", "worker",
                "-Q", "coursewise.training,coursewise.webhooks", "-c", "1",
                "-n", f"{name}-{os.getpid()}@%h",
                "--loglevel=INFO", "--without-mingle", "--without-gossip",
            ],
            # implicit parallelises itself
            {"OPENBLAS_NUM_THREADS": "1", "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir(name))},
            liveness_max_age=self.liveness_max_age,
        )  # fmt: skip
        return process

    def start_sweeper(self) -> Process:
        """The sweeper: a loop process of its own (workers/sweeper.py)."""
        return self.spawn(
            "sweeper",
            [sys.executable, "-m", "workers.sweeper"],
            liveness_max_age=self.liveness_max_age,
        )

    def start_beat(self) -> Process:
        schedule = self.var_dir / "celerybeat-schedule"
        return self.spawn(
            "beat",
            [
                str(BIN / "celery"), "-A", "workers.celery_app", "beat", "--loglevel=INFO",
                "--schedule", str(schedule),
            ],
            liveness_max_age=self.liveness_max_age,
        )  # fmt: skip

    def start_api(
        self, timeout: float | None = None, workers: int = 1, ready_path: str = "/readyz"
    ) -> Process:
        # A loaded machine can take minutes to load the model: COURSEWISE_START_TIMEOUT_S.
        if timeout is None:
            timeout = float(os.environ.get("COURSEWISE_START_TIMEOUT_S", "120"))
        process = self.spawn(
            "api",
            [
                str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1",
                "--port", str(self.api_port), "--workers", str(workers), "--no-access-log",
            ],
            {"PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir("api"))},
            liveness_max_age=self.liveness_max_age,
        )  # fmt: skip
        self._wait(process, lambda: self.answers(ready_path), timeout)
        return process

    def start_flower(self) -> Process:
        return self.spawn(
            "flower",
            [
                str(BIN / "celery"), "-A", "workers.celery_app", "flower",
                f"--port={self.flower_port}", "--address=127.0.0.1",
            ],
            check=self._flower_answers,
        )  # fmt: skip

    def _flower_answers(self) -> bool:
        """Flower has no loop of ours to touch a heartbeat: its own health page answering is
        its liveness (a hung Tornado loop answers nothing)."""
        try:
            url = f"http://127.0.0.1:{self.flower_port}/healthcheck"
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def start_explorer(self, port: int, timeout: float = 60) -> Process:
        """The catalogue explorer (Streamlit), reading the API of this stack."""
        process = self.spawn(
            "explorer",
            [
                str(BIN / "streamlit"), "run", str(ROOT / "explorer" / "app.py"),
                "--server.address", "127.0.0.1", "--server.port", str(port),
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none",
            ],
            {
                "COURSEWISE_EXPLORER_API_URL": self.api_url,
                **({"COURSEWISE_API_KEY": self.api_key} if self.api_key else {}),
            },
        )  # fmt: skip

        def healthy() -> bool:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait(process, healthy, timeout)
        return process

    def answers(self, path: str) -> bool:
        try:
            return httpx.get(f"{self.api_url}{path}", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, process: Process, predicate: Callable[[], bool], timeout: float) -> None:
        def check() -> bool:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            return bool(predicate())

        try:
            wait_for(check, timeout, process.name)
        except TimeoutError:
            raise RuntimeError(f"{process.name} did not start:\n{process.tail()}") from None

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
            (self.var_dir / f"{process.name}.pid").unlink(missing_ok=True)
        self.processes.clear()

    @contextlib.contextmanager
    def running(self) -> Iterator["LocalStack"]:
        try:
            yield self
        finally:
            self.stop()


def stop_stale(pidfile: Path) -> None:
    """Stop a process a previous run of ours started and left behind (by its recorded pid)."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.killpg(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
