#!/usr/bin/env bash
# Validate docker-compose.yml without a Docker engine:
#   1. docker-compose (Debian's v1 package) parses and interpolates it with
#      .env.example, as `docker compose up` would;
#   2. check-jsonschema validates it against the Compose Specification schema.
# Usage (from the repo root): .ci/validate-compose.sh [VENV]   (default: .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A given venv is resolved against the caller's directory; the default is the
# repo's own .venv.
VENV="${1:-$ROOT/.venv}"
case "$VENV" in
    /*) ;;
    *) VENV="$(pwd)/$VENV" ;;
esac
cd "$ROOT"

if ! command -v docker-compose >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "installing docker-compose (apt)..."
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-compose >/dev/null
fi

if [ ! -x "$VENV/bin/check-jsonschema" ]; then
    echo "installing check-jsonschema into $VENV..."
    "$VENV/bin/pip" install -q check-jsonschema
fi

# Debian bookworm ships docker-compose 1.29.x: --env-file is a global option
# (before the subcommand) and `config -q` only validates. It needs no daemon.
docker-compose --env-file .env.example -f docker-compose.yml config -q
echo "ok: docker-compose $(docker-compose version --short) config (with .env.example)"

# Its -q also hides the errors: capture the output and show it only on failure.
if ! out="$("$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml 2>&1)"; then
    printf '%s\n' "$out" >&2
    exit 1
fi
echo "ok: check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml"
