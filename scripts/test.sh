#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs the Swift unit
# tests and the integration tests against the release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps test

echo "== swift build -c release"
swift build -c release 2>&1 | tail -n 3
echo "== swift test (unit tests)"
swift test 2>&1 | tail -n 15
echo "== integration tests"
# Timing-sensitive tests (servers, signals, kill -9) get one rerun on a busy
# machine; every rerun is listed in the summary (-rR) so flakes stay visible.
reruns=()
python3 -c 'import pytest_rerunfailures' 2>/dev/null && reruns=(-rR --reruns 1 --reruns-delay 1)
SQ_BIN="$PWD/.build/release" python3 -m pytest -q "${reruns[@]}" Tests/Integration "$@"
