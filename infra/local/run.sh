#!/usr/bin/env bash
# README command 1: set up (first run) and run Coursewise locally with its embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/local/install.sh
exec .venv/bin/python -m devstack.run "$@"
