"""The schema is made by migrations only, and the models agree with them."""

import subprocess
import sys

from devstack.stack import ROOT, LocalStack


def test_alembic_check_finds_no_drift(stack: LocalStack, stack_env: dict[str, str]) -> None:
    import os

    result = subprocess.run(
        [sys.executable, "-m", "alembic", "check"],
        cwd=ROOT,
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr
