"""What every benchmark needs: its own stack (database, vhost, collection, ports), a description
of the machine, CPU accounting per process group, percentiles, and a load generator (wrk)."""

import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

from devstack.stack import BIN, LocalStack, free_port
from shared.calibration import cpu_identity
from shared.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432"


def machine() -> dict[str, Any]:
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        if found := re.search(r"^model name\s*:\s*(.+)$", info, re.M):
            cpu = found.group(1).strip()
    have = cpu_identity()[1]
    flags = " ".join(
        f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in have
    )
    versions = {
        name: _version(name)
        for name in (
            "torch", "openvino", "sentence-transformers", "fastapi", "uvicorn", "celery",
            "pymilvus", "milvus-lite", "sqlalchemy", "asyncpg",
        )
    }  # fmt: skip
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "flags": flags,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "versions": versions,
        "load_average": os.getloadavg()[0],
    }


def describe(info: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (
        f"{info['cpu']}, {info['cores']} cores ({info['flags'] or 'no AVX2'}), "
        f"{info['memory_gb']} GB; Python {info['python']}; {versions}"
    )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_seconds(stack: LocalStack) -> dict[str, float]:
    """CPU time (user + system) used so far by each process group the stack started."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups = {process.popen.pid: process.name for process in stack.processes}
    used = dict.fromkeys(groups.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        group = int(fields[2])  # pgrp
        if group in groups:
            used[groups[group]] += (int(fields[11]) + int(fields[12])) / ticks
    return used


# Machine-wide processes by their command name (/proc/<pid>/stat), for the services the stack
# shares with every other user of the machine.
SERVICES = {"postgres": "postgresql", "beam.smp": "rabbitmq"}


def services_cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) used so far by all PostgreSQL and RabbitMQ processes of the
    machine (not only this run's: the figures are for a quiet machine)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys(SERVICES.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        service = SERVICES.get(head.split("(", 1)[1])
        if service is not None:
            fields = tail.split()
            used[service] += (int(fields[11]) + int(fields[12])) / ticks
    return used


def machine_cpu_seconds() -> float:
    """CPU time used so far by the whole machine (all cores, busy time only)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def load_generator_cpu_seconds() -> float:
    """CPU time of this process's finished children: the load generators (wrk, publishers),
    which are gone by the time a measurement ends, so /proc no longer shows them."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """Cores used over an interval by the stack's process groups, PostgreSQL, RabbitMQ, the load
    generator (children that ended within the interval) and the machine as a whole."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.started = time.perf_counter()
        self.before = self._read()

    def _read(self) -> dict[str, float]:
        return (
            cpu_seconds(self.stack)
            | services_cpu_seconds()
            | {"load generator": load_generator_cpu_seconds(), "machine": machine_cpu_seconds()}
        )

    def cores(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.started
        after = self._read()
        return {k: (after[k] - self.before.get(k, 0.0)) / elapsed for k in after}


def settle(stack: LocalStack, *, below: float = 0.15, timeout: float = 90.0) -> float:
    """Wait until the stack's own processes are quiet (under `below` cores for a second), up to
    `timeout`: after writes Milvus Lite builds indexes and compacts in the background, and a
    path and its limit must be measured under the same conditions. Returns the seconds waited."""
    started = time.perf_counter()
    previous = sum(cpu_seconds(stack).values())
    while time.perf_counter() - started < timeout:
        time.sleep(1.0)
        now = sum(cpu_seconds(stack).values())
        if now - previous < below:
            break
        previous = now
    return time.perf_counter() - started


@contextlib.contextmanager
def bare_endpoints(stack: LocalStack, workers: int) -> Iterator[str]:
    """`bench/bare_app.py` served by the API's uvicorn command line (same processes, flags and
    loop) while the block runs; yields its base URL."""
    port = free_port()
    bare = stack.spawn(
        "bare",
        [
            str(BIN / "uvicorn"), "bench.bare_app:app", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--no-access-log",
        ],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/v1/courses/x")
        yield url
    finally:
        bare.stop()
        stack.processes.remove(bare)


def _wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


async def _pg(sql: str) -> None:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@dataclass
class BenchStack:
    stack: LocalStack
    settings: Settings
    env: dict[str, str]
    var_dir: Path
    database: str
    vhost: str


@contextlib.contextmanager
def own_stack(
    name: str, keep_logs: bool = False, extra_env: dict[str, str] | None = None
) -> Iterator[BenchStack]:
    """A database, vhost, collection and ports of this run only, and a Milvus Lite server on
    them, migrated, with an admin key; every process started is stopped on exit."""
    run = uuid.uuid4().hex[:8]
    database = vhost = f"coursewise_bench_{name}_{run}"
    env = {
        "COURSEWISE_DATABASE_URL": f"{PG.replace('postgresql', 'postgresql+asyncpg')}/{database}",
        "COURSEWISE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "COURSEWISE_MILVUS_URI": f"http://127.0.0.1:{free_port()}",
        "COURSEWISE_MILVUS_COLLECTION": f"bench_{name}_{run}",
        "COURSEWISE_LOG_LEVEL": "WARNING",
        # The benchmark measures the service, not its guards against abuse.
        "COURSEWISE_MAX_PENDING_TASKS": "1000000",
        "COURSEWISE_MAX_PENDING_TASKS_PER_OWNER": "1000000",
        **(extra_env or {}),
    }
    # pydantic-settings types its own _-prefixed init options; these keys are all fields
    settings = Settings(**{k.removeprefix("COURSEWISE_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    var_dir = Path(tempfile.mkdtemp(prefix=f"coursewise-bench-{name}-"))
    asyncio.run(_pg(f'CREATE DATABASE "{database}"'))
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    stack = LocalStack(env=env, var_dir=var_dir, api_port=free_port())
    try:
        with stack.running():
            stack.start_milvus(var_dir / "milvus-data")
            stack.prestart()
            stack.api_key = stack.create_key("bench", ["admin"], rate_limit=100_000_000)
            yield BenchStack(stack, settings, env, var_dir, database, vhost)
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        if keep_logs:
            print(f"logs kept in {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


# --- load generation ---------------------------------------------------------------------------
WRK_REPORT = """
done = function(summary, latency, requests)
  local out = {requests = summary.requests, duration_us = summary.duration,
    errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout,
    p50 = latency:percentile(50), p90 = latency:percentile(90), p99 = latency:percentile(99),
    mean = latency.mean, max = latency.max}
  local parts = {}
  for k, v in pairs(out) do parts[#parts + 1] = string.format("%q:%s", k, v) end
  io.write("WRK_JSON {" .. table.concat(parts, ",") .. "}\\n")
end
"""


@dataclass
class Load:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    rate: float | None = None,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    paths: list[str] | None = None,
) -> Load:
    """Drive `url` with wrk (a second process, C, on loopback): `connections` keep-alive
    connections, as fast as they go, or at a total `rate` per second (each connection waits
    connections/rate between requests: an open-ish loop for latency at a given load).
    `paths` rotate per request (e.g. different course ids)."""
    script = ["local paths = " + _lua_list(paths or []), "local i = 0"]
    header_lines = "".join(
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items()
    )
    script.append(f"wrk.method = {json.dumps(method)}")
    if body is not None:
        script.append(f"wrk.body = {json.dumps(body)}")
    script.append(header_lines)
    script.append(
        "request = function()\n"
        "  if #paths == 0 then return wrk.format() end\n"
        "  i = i + 1\n"
        "  return wrk.format(nil, paths[(i % #paths) + 1])\n"
        "end"
    )
    if rate:
        script.append(f"delay = function() return {max(1, round(connections / rate * 1000))} end")
    script.append(WRK_REPORT)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write("\n".join(script))
    try:
        result = subprocess.run(
            ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:.0f}s",
             "--timeout", "10s", "-s", handle.name, url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    line = next(x for x in result.stdout.splitlines() if x.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    return Load(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        errors=int(data["errors"]),
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        mean_ms=data["mean"] / 1000,
    )


def _lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"
