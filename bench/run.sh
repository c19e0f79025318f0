#!/usr/bin/env bash
# The benchmark suite, from a fresh machine: the project's environment, wrk, then every path
# against its limit; rewrites docs/benchmarks.md. Arguments go to `python -m bench.suite`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/local/install.sh
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (the load generator) ..."
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk; else sudo apt-get install -y -q wrk; fi
fi
bash infra/local/services.sh
exec .venv/bin/python -m bench.suite "$@"
