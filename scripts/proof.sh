#!/usr/bin/env bash
# The proof behind RELIABILITY.md, in one command: fuzzing of every parser
# that takes outside input, crash injection through the whole system, the
# 200 + 200 session load and the security battery. Installs what it needs,
# builds the release programs, runs each part, then prints every figure and
# promise together. Exits 0 when every promise holds, 1 when one is broken,
# 2 when a part could not run.
#
# Usage: scripts/proof.sh [PART ...]   (parts: fuzz crash crash-filter load
# security; default all; crash-filter is the crash run with qmail-filter and
# a private clamd in the path)
# Sizes: PROOF_FUZZ_SECONDS (per fuzz target, default 60) and the PROOF_*
# variables each proof/*.py documents at its top.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps test

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(fuzz crash crash-filter load security)

echo "== swift build -c release"
swift build -c release 2>&1 | tail -n 3
scripts/link-programs.sh
export SQ_BIN="$PWD/.build/release"

log=$(mktemp -d /var/tmp/sq-proof-XXXXXX)
trap 'rm -rf "$log"' EXIT
status=0
for part in "${parts[@]}"; do
  echo
  echo "== $part"
  start=$(date +%s)
  if [ "$part" = fuzz ]; then
    FUZZ_JOBS="${FUZZ_JOBS:-2}" scripts/fuzz.sh "${PROOF_FUZZ_SECONDS:-60}" 2>&1 | tee "$log/$part"
    rc=${PIPESTATUS[0]}
  elif [ "$part" = crash-filter ]; then
    cdir=$(mktemp -d /var/tmp/sq-clamd-XXXXXX)
    python3 - "$cdir" > "$log/clamd-port" <<'PY'
import pathlib, sys
sys.path.insert(0, "Tests/Integration")
from filter_daemons import Clamd
d = Clamd(pathlib.Path(sys.argv[1]) / "c")
ok = d.start()
print(d.port if ok else "", d.proc.pid if d.proc else "", flush=True)
PY
    read -r cport cpid < "$log/clamd-port" || true
    if [ -n "$cport" ]; then
      PROOF_CRASH_FILTER="127.0.0.1:$cport" python3 proof/crash.py 2>&1 | tee "$log/$part"
      rc=${PIPESTATUS[0]}
    else
      echo "crash-filter: clamd did not start" | tee "$log/$part"; rc=2
    fi
    [ -n "${cpid:-}" ] && kill -TERM -- "-$cpid" 2>/dev/null
    rm -rf "$cdir"
  elif [ -f "proof/$part.py" ]; then
    python3 "proof/$part.py" 2>&1 | tee "$log/$part"
    rc=${PIPESTATUS[0]}
  else
    echo "no such part: $part" | tee "$log/$part"
    rc=2
  fi
  echo "$part: exit $rc after $(( $(date +%s) - start )) s" >> "$log/summary"
  if [ "$rc" -ne 0 ] && [ "$status" -ne 2 ]; then
    [ "$rc" -eq 1 ] && status=1 || status=2
  fi
done

echo
echo "== summary"
cat "$log/summary"
for part in "${parts[@]}"; do
  grep -hE '^(FIGURE|PROMISE) ' "$log/$part" | sed "s/^/$part: /"
done
broken=$(cat "$log"/* | grep -cE '^PROMISE .*: BROKEN' || true)
echo "promises broken: $broken"
[ "$broken" -eq 0 ] || [ "$status" -ne 0 ] || status=1
exit $status
