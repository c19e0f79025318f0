"""The liveness check: a live process with a stale heartbeat fails it (and `--kill`, what the
compose healthchecks use, ends that process); a fresh one passes; a gone one is forgotten."""

import os
import subprocess
import sys
import time
from pathlib import Path

from shared import liveness


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_a_stale_heartbeat_of_a_live_process_fails_and_kill_ends_it(tmp_path: Path) -> None:
    hung, fresh = _sleeper(), _sleeper()
    try:
        for process in (hung, fresh):
            (tmp_path / f"worker-{process.pid}").touch()
        old = time.time() - 600
        os.utime(tmp_path / f"worker-{hung.pid}", (old, old))
        assert liveness.main(["check", "--dir", str(tmp_path), "--max-age", "60"]) == 1
        assert liveness.main(["check", "--dir", str(tmp_path), "--max-age", "60", "--kill"]) == 1
        assert hung.wait(10) == -9
        assert fresh.poll() is None  # its heartbeat is fresh: left alone
        # The killed one's file is forgotten once its pid is gone.
        assert liveness.main(["check", "--dir", str(tmp_path), "--max-age", "60"]) == 0
        assert not (tmp_path / f"worker-{hung.pid}").exists()
    finally:
        for process in (hung, fresh):
            process.kill()
            process.wait(10)


def test_no_directory_means_nothing_to_report(tmp_path: Path) -> None:
    assert liveness.main(["check", "--dir", str(tmp_path / "absent"), "--max-age", "1"]) == 0
    heartbeat = liveness.Heartbeat(None, "api")
    heartbeat.touch()  # off: a no-op, not an error
    assert heartbeat.path is None
