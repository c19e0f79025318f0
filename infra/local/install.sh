#!/usr/bin/env bash
# Creates .venv and installs the project with its dev tools. Idempotent and quick once done.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "coursewise: Python 3.11 is required (found $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.coursewise-installed
# constraints.txt pins every version: a new lock reinstalls as surely as a new pyproject.toml.
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "installing dependencies into .venv (first run takes a few minutes) ..."
  .venv/bin/python -m pip install -q --upgrade pip
  # The CPU build of torch first: anything else would pull a multi-GB CUDA build.
  .venv/bin/pip install -q -c constraints.txt "torch==2.13.0"
  .venv/bin/pip install -q -c constraints.txt -e '.[dev]'
  echo "$wanted" > "$stamp"
fi
