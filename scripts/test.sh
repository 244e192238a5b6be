#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs the Swift unit
# tests and the integration tests against the release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps test

echo "== swift build -c release"
swift build -c release 2>&1 | tail -n 3
scripts/link-programs.sh
echo "== swift test (unit tests)"
swift test 2>&1 | tail -n 15
echo "== integration tests"
# Timing-sensitive tests (servers, signals, kill -9) get one rerun on a busy
# machine; every rerun is listed in the summary (-rR) so flakes stay visible.
reruns=()
python3 -c 'import pytest_rerunfailures' 2>/dev/null && reruns=(-rR --reruns 1 --reruns-delay 1)
SQ_BIN="$PWD/.build/release" python3 -m pytest -q "${reruns[@]}" Tests/Integration "$@"
# A short fuzz run of every target (Fuzz/*.swift): about 1.5 min of building
# on a fresh clone (modules are cached in .build-fuzz), then FUZZ_SECONDS
# per target, two at a time. A crash, hang or broken invariant fails the
# test command. FUZZ_SECONDS=0 skips it.
if [ "${FUZZ_SECONDS:-8}" != 0 ]; then
  echo "== fuzz (${FUZZ_SECONDS:-8} s per target)"
  FUZZ_JOBS="${FUZZ_JOBS:-2}" scripts/fuzz.sh "${FUZZ_SECONDS:-8}"
fi
