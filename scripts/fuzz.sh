#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in Fuzz/.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET ...]   (default 60 s, every target)
# Each target names the modules it needs in its first line ("// modules: A B").
# Those modules' sources are compiled together with the target into one
# instrumented binary (imports of our own modules stripped). Crashes are
# written to Fuzz/artifacts/ and make the script exit non-zero; add each as
# a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"; shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in Fuzz/*.swift; do targets+=("$(basename "$f" .swift)"); done
fi
out=.build-fuzz
mkdir -p "$out" Fuzz/artifacts
status=0
for t in "${targets[@]}"; do
  src="Fuzz/$t.swift"
  mods=$(head -n1 "$src" | sed -n 's#^// modules: ##p')
  work="$out/$t-src"; rm -rf "$work"; mkdir -p "$work"
  for m in $mods; do
    for f in Sources/"$m"/*.swift; do
      sed -E '/^(@testable )?import (Qmail[A-Za-z]*|UserDirectory)$/d' "$f" > "$work/${m}_$(basename "$f")"
    done
  done
  cp "$src" "$work/zz_fuzz_target.swift"
  echo "== building fuzz target $t ($mods)"
  swiftc -sanitize=fuzzer,address -parse-as-library -module-name Fuzz_"$t" -O -g "$work"/*.swift \
    -o "$out/fuzz-$t" 2> "$out/$t.build.log" || { cat "$out/$t.build.log" | grep -v 'Cannot export local symbol' >&2; status=1; continue; }
  corpus="$out/corpus-$t"; mkdir -p "$corpus"
  echo "== running $t for ${secs}s"
  if ! "$out/fuzz-$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
       -artifact_prefix="Fuzz/artifacts/$t-" "$corpus" "Fuzz/corpus/$t" > "$out/$t.log" 2>&1; then
    echo "!! $t found a crash:"; grep -E "ERROR|Fatal|SUMMARY|Test unit written" "$out/$t.log" | head -5
    status=1
  else
    grep -E "^#[0-9]+.*(DONE|pulse)" "$out/$t.log" | tail -n 1 || true
    echo "   $t: no crash; $(grep -oE "Done [0-9]+ runs" "$out/$t.log" || true)"
  fi
done
exit $status
