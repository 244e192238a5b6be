#!/usr/bin/env bash
# Benchmark: checkpassword-file logins/s and vdelivermail lookup time for
# 10,000 users in 1,000 domains (see bench/login_bench.py). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release 2>&1 | tail -n 1
scripts/link-programs.sh
SQ_BIN="$PWD/.build/release" python3 bench/login_bench.py
