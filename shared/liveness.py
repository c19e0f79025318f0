"""Liveness that sees a hang, not only an exit.

Each long-lived process touches a file from its main loop: the API's event loop (only while its
publishing thread is not stuck), a worker's consumer loop (a timer of Celery's event loop), beat's
scheduler tick, the sweeper's round. A process whose loop is blocked (a wait without a bound, a
SIGSTOP) stops touching it; `python -m shared.liveness check` then fails, and whoever runs the
process restarts it: the local runner (devstack), a compose healthcheck (`--kill`), a Kubernetes
liveness probe.

One file per pid (`<dir>/<name>-<pid>`), so the several uvicorn processes of one API container
cannot vouch for each other. Files of pids that are gone are ignored (and removed).
"""

import argparse
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Heartbeat:
    """The file one process touches. A no-op when no directory is configured."""

    directory: Path | None
    name: str

    @property
    def path(self) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{self.name}-{os.getpid()}"

    def touch(self) -> None:
        path = self.path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError:  # a full or read-only disk must not take the process down
            return

    def remove(self) -> None:
        path = self.path
        if path is not None:
            path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive either.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def stale(directory: Path, max_age_s: float, now: float | None = None) -> dict[int, float]:
    """pid -> age (s) of every live process whose file is older than `max_age_s`."""
    now = time.time() if now is None else now
    found: dict[int, float] = {}
    if not directory.is_dir():
        return found
    for path in directory.iterdir():
        try:
            pid = int(path.name.rsplit("-", 1)[1])
            age = now - path.stat().st_mtime
        except (IndexError, ValueError, OSError):
            continue
        if not _pid_alive(pid):
            path.unlink(missing_ok=True)
            continue
        if age > max_age_s:
            found[pid] = age
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.liveness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="exit 1 if a live process's heartbeat is too old")
    check.add_argument("--dir", type=Path, required=True)
    check.add_argument("--max-age", type=float, required=True, help="seconds")
    check.add_argument(
        "--kill",
        action="store_true",
        help="also SIGKILL the stale processes (compose: the container then exits and its "
        "restart policy starts it again; a healthcheck alone restarts nothing)",
    )
    http = sub.add_parser(
        "http",
        help="exit 1 if URL fails ATTEMPTS times in a row (for a process with no loop of ours, "
        "such as Flower)",
    )
    http.add_argument("url")
    http.add_argument("--attempts", type=int, default=3)
    http.add_argument("--timeout", type=float, default=5.0)
    http.add_argument(
        "--kill",
        action="store_true",
        help="then SIGKILL every process of this container but its init (compose with "
        "`init: true`: the container exits and is restarted)",
    )
    args = parser.parse_args(argv)
    if args.command == "http":
        if _answers(args.url, args.attempts, args.timeout):
            return 0
        print(f"{args.url}: no answer {args.attempts} times in a row")
        if args.kill:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(-1, signal.SIGKILL)  # never this process or PID 1 (the kernel's rule)
        return 1
    found = stale(args.dir, args.max_age)
    for pid, age in sorted(found.items()):
        print(f"pid {pid}: no heartbeat for {age:.0f} s (bound {args.max_age:.0f} s)")
        if args.kill:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return 1 if found else 0


def _answers(url: str, attempts: int, timeout: float) -> bool:
    import urllib.request

    for attempt in range(attempts):
        if attempt:
            time.sleep(timeout)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if 200 <= response.status < 300:
                    return True
        except OSError:
            continue
    return False


if __name__ == "__main__":
    sys.exit(main())
