#!/usr/bin/env bash
# Validate infra/k8s without a cluster: core kinds with kubernetes-validate (strict), operator
# kinds (KEDA, RabbitMQ, CloudNativePG, Milvus) against the schemas in devstack/k8s_schemas, and
# every file named by a kustomization. Usage (from the repo root): .ci/validate-k8s.sh [VENV]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
case "$VENV" in
    /*) ;;
    *) VENV="$(pwd)/$VENV" ;;
esac
cd "$ROOT"
"$VENV/bin/python" -m devstack.k8s_validate infra/k8s
