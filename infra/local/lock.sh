#!/usr/bin/env bash
# Refreshes constraints.txt, the exact version of every runtime and dev dependency that
# install.sh (so CI) and the Docker image install. It resolves pyproject.toml afresh, ignoring the
# old pins, in a throwaway venv, so a refresh picks up new releases and drops what nothing needs.
#   bash infra/local/lock.sh               rewrite constraints.txt (then review the diff and commit)
#   bash infra/local/lock.sh --check VENV  fail unless VENV holds exactly the pinned versions (CI)
set -euo pipefail
cd "$(dirname "$0")/../.."

# pip's freeze of a venv, as the lock states it: pip itself and the project left out; setuptools
# kept (torch needs it at run time); torch without its local build tag (==2.13.0 matches the
# +cpu wheel); nvidia-*/triton left out, since only a CUDA build of torch pulls them.
pins() {
  "$1/bin/pip" freeze --all --exclude-editable \
    | grep -v -i -E '^(pip|coursewise)( @ |==)|^(nvidia-[a-z0-9-]+|triton)==' \
    | sed -E 's/^(torch==[^+]+)\+.*$/\1/' \
    | LC_ALL=C sort -f
}

if [ "${1:-}" = "--check" ]; then
  venv=${2:?usage: lock.sh --check VENV}
  if ! diff -u <(grep -v '^#' constraints.txt) <(pins "$venv"); then
    echo "coursewise: $venv differs from constraints.txt (above: - lock, + installed)." >&2
    echo "  A dependency changed in pyproject.toml? Run: bash infra/local/lock.sh" >&2
    exit 1
  fi
  exit 0
fi

PYTHON=${PYTHON:-python3.11}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
# Exactly install.sh's order, without -c: the CPU build of torch first.
"$tmp/venv/bin/pip" install -q "torch==2.13.0"
"$tmp/venv/bin/pip" install -q -e '.[dev]'
"$tmp/venv/bin/pip" check
{
  echo "# Exact versions of every dependency (runtime and dev) of pyproject.toml, for Python 3.11."
  echo "# Every install uses them: pip install -c constraints.txt ... (infra/local/install.sh, CI,"
  echo "# infra/docker/Dockerfile). Generated: edit pyproject.toml, then run bash infra/local/lock.sh"
  pins "$tmp/venv"
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pins"
