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
SQ_BIN="$PWD/.build/release" python3 -m pytest -q -x Tests/Integration "$@"
