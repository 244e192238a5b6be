#!/usr/bin/env bash
# Benchmark: queue injection rate beside the fsync floor (see bench/queue_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release 2>&1 | tail -n 1
scripts/link-programs.sh
SQ_BIN="$PWD/.build/release" python3 bench/queue_bench.py
