"""What a fault scenario or the soak leaves behind when it fails, taken while the failure is
still there (before teardown): every stack process's Python stacks, the broker's connections,
channels (with their unconfirmed and unacknowledged counts) and queues, a ledger summary by
status and age, and the tails of the logs. Written to a directory that is kept, and returned
as text for the test output."""

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg

from devstack.stack import LocalStack
from shared.logging import STACK_DUMP_SIGNAL
from tests.support.broker import Broker
from tests.support.stack import PG_ADMIN_DSN, Names


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return sorted(members)


def _catches(pid: int, signum: int) -> bool:
    """Whether the process handles `signum` (faulthandler registered): sending it to one that
    does not would kill it, SIGUSR2's default action."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    lines = status.splitlines()
    caught = next((line.split()[1] for line in lines if line.startswith("SigCgt")), "0")
    return bool(int(caught, 16) >> (signum - 1) & 1)


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:300]
    return "?"


def python_stacks(stack: LocalStack, wait_s: float = 2.0) -> str:
    """Every thread's stack of every Python process the stack started (children included), by
    the signal each one registered with faulthandler at start (shared/logging.py); read back
    from the end of each process's log."""
    marks = {}
    signalled: list[str] = []
    for process in stack.processes:
        if not process.alive():
            continue
        marks[process.log] = process.log.stat().st_size if process.log.exists() else 0
        for pid in _group_members(process.popen.pid):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "T":
                signalled.append(f"{process.name} pid {pid}: stopped (SIGSTOP), no stack")
            elif _catches(pid, STACK_DUMP_SIGNAL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, STACK_DUMP_SIGNAL)
                signalled.append(f"{process.name} pid {pid}: {_cmdline(pid)}")
    time.sleep(wait_s)  # faulthandler writes from the signal handler, at once
    found = ["--- processes signalled", *signalled]
    for log, start in marks.items():
        with log.open("rb") as handle:
            handle.seek(start)
            new = handle.read().decode(errors="replace")
        stacks = [line for line in new.splitlines() if not line.startswith("{")]
        if stacks:
            found += [f"--- {log.name}: stacks", *stacks]
    return "\n".join(found)


CHANNEL_COLUMNS = [
    "connection", "name", "confirm", "messages_unconfirmed", "messages_unacknowledged",
    "consumer_count",
]  # fmt: skip
QUEUE_COLUMNS = ["name", "messages_ready", "messages_unacknowledged", "consumers"]


def broker_state(broker: Broker, vhost: str) -> str:
    queries = [
        ("alarms", ["eval", "rabbit_alarm:get_alarms()."]),
        ("connections", ["list_connections", "name", "state", "channels", "send_pend"]),
        ("channels", ["list_channels", *CHANNEL_COLUMNS]),
        ("queues", ["list_queues", "-p", vhost, *QUEUE_COLUMNS]),
    ]
    found = []
    for title, args in queries:
        try:
            result = broker.ctl(*args, timeout=30, check=False)
            rows = (result.stdout.strip() or result.stderr.strip()).splitlines()
            # Celery's empty delay queues (celery_delayed_0..27) are noise.
            rows = [r for r in rows if not (r.startswith("celery_delayed_") and r.endswith("\t0"))]
            found += [f"--- broker {title}", *rows]
        except Exception as exc:  # a hung node is itself the finding
            found += [f"--- broker {title}", f"{type(exc).__name__}: {exc}"]
    return "\n".join(found)


async def _ledger(database: str) -> str:
    connection = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database)
    try:
        rows = await connection.fetch(
            "SELECT status, count(*) AS tasks, "
            "max(extract(epoch FROM now() - enqueued_at))::int AS oldest_s, "
            "min(extract(epoch FROM now() - enqueued_at))::int AS newest_s, "
            "max(publish_count) AS max_publishes, max(attempts) AS max_attempts, "
            "max(extract(epoch FROM now() - last_published_at))::int AS last_publish_oldest_s "
            "FROM tasks GROUP BY status ORDER BY status"
        )
        locks = await connection.fetch(
            "SELECT pid, state, wait_event_type, wait_event, "
            "extract(epoch FROM now() - xact_start)::int AS xact_s, left(query, 120) AS query "
            "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await connection.close()
    lines = ["--- ledger by status (ages in seconds)"]
    lines += [", ".join(f"{k}={v}" for k, v in dict(row).items()) for row in rows]
    lines.append("--- database sessions")
    lines += [", ".join(f"{k}={v}" for k, v in dict(row).items()) for row in locks]
    return "\n".join(lines)


def ledger_summary(database: str) -> str:
    try:
        return asyncio.run(_ledger(database))
    except Exception as exc:
        return f"--- ledger: {type(exc).__name__}: {exc}"


def log_tails(stack: LocalStack, lines: int = 30) -> str:
    """Each process's last warnings and errors and the end of its log."""
    found = []
    for log in sorted(stack.var_dir.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()
        alarms = [line for line in text if '"WARNING"' in line or '"ERROR"' in line]
        found.append(f"--- {log.name}: last warnings and errors")
        found += [line[:500] for line in alarms[-lines:]]
        found.append(f"--- {log.name}: last lines")
        found += [line[:500] for line in text[-lines:]]
    return "\n".join(found)


def capture(stack: LocalStack, broker: Broker | None, names: Names, label: str) -> str:
    """All of the above, written to a kept directory (its logs copied in) and returned."""
    keep = Path(tempfile.mkdtemp(prefix=f"coursewise-diagnosis-{label}-"))
    parts = [
        f"diagnosis kept in {keep}",
        python_stacks(stack),
        broker_state(broker, names.vhost) if broker is not None else "--- broker: not our own",
        ledger_summary(names.database),
        log_tails(stack),
    ]
    if broker is not None:
        parts.append(broker.log_tail())
    text = "\n".join(parts)
    (keep / "diagnosis.txt").write_text(text)
    for log in stack.var_dir.glob("*.log"):
        shutil.copy(log, keep / log.name)
    if broker is not None:
        for log in [broker.base / "server.log", *(broker.base / "log").glob("*.log")]:
            with contextlib.suppress(OSError):
                shutil.copy(log, keep / f"rabbitmq-{log.name}")
    return text
