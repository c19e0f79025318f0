#!/usr/bin/env bash
# README command 2: set up (first run) and run the checks and the whole test suite against the
# real PostgreSQL and RabbitMQ on localhost, a Milvus Lite server and the real model.
# Extra arguments go to pytest (e.g. `bash infra/local/test.sh tests/unit -q`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/local/install.sh
.venv/bin/python -m devstack.run --preflight
command -v rabbitmqctl >/dev/null || {
  echo "coursewise: the tests create their own RabbitMQ vhost with rabbitmqctl, which is not on PATH." >&2
  exit 1
}
echo "== ruff, mypy"
.venv/bin/ruff check . --output-format concise
.venv/bin/ruff format --check . >/dev/null || { .venv/bin/ruff format --check .; exit 1; }
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
