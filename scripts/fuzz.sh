#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in Fuzz/.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET ...]   (default 60 s, every target)
#
# Each target names the library modules it uses in its first line
# ("// modules: A B"); the script imports them (@testable) into the target.
# Every library module (its top-level .swift files: TestSupport keeps its
# XCTest assertions in a subfolder, out of the fuzz targets) is compiled
# once, instrumented (-sanitize=fuzzer,
# address), with its dependencies taken from Package.swift, and kept in
# $FUZZ_OUT/mods with a hash of its inputs: a module or a target whose
# sources, dependencies and compiler did not change is not rebuilt.
#
# Each target runs SECONDS over its seed corpus Fuzz/corpus/<target> (inputs
# it finds go to $FUZZ_OUT/corpus-<target>, not into the repository).
# Crashes, hangs (an input taking more than FUZZ_TIMEOUT s) and running out
# of memory are written to Fuzz/artifacts/ and break the promise. Fix each,
# add a regression test and put the input into the target's seed corpus.
#
# Output (scripts/proof.sh reads it):
#   FIGURE inputs fuzzed <target>: <runs>      one per target
#   FIGURE inputs fuzzed total: <runs>
#   PROMISE fuzz targets crash-free: ok | BROKEN <targets>
# Exit 0 when every target ran clean, 1 on a finding, 2 when a target or
# module did not build (or the compiler has no libFuzzer).
# Environment: FUZZ_DIR (targets, corpora and artifacts; default Fuzz),
# FUZZ_OUT (default .build-fuzz), FUZZ_TIMEOUT (default 25),
# FUZZ_MAX_LEN (default 65536), FUZZ_JOBS (targets run at once, default 1).
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"; shift || true
fdir="${FUZZ_DIR:-Fuzz}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$fdir"/*.swift; do targets+=("$(basename "$f" .swift)"); done
fi
out="${FUZZ_OUT:-.build-fuzz}"
per_input="${FUZZ_TIMEOUT:-25}"
max_len="${FUZZ_MAX_LEN:-65536}"
jobs="${FUZZ_JOBS:-1}"
mods="$out/mods"
mkdir -p "$mods" "$fdir/artifacts"
flags=(-O -g -enable-testing -sanitize=fuzzer,address -parse-as-library -package-name swift_qmail)
if ! command -v swiftc >/dev/null; then
  echo "PROMISE fuzz targets crash-free: BROKEN swiftc not found"; exit 2
fi
compiler="$(swiftc --version 2>&1 | head -n1) ${flags[*]}"

# Direct dependencies of a module, from its .target/.systemLibrary line.
deps_of() {
  grep -E "\.(target|systemLibrary)\(name: \"$1\"" Package.swift | head -n1 |
    sed -n 's/.*dependencies: \[\([^]]*\)\].*/\1/p' | grep -oE '[A-Za-z0-9_]+' || true
}
# Source directory of a module: its path in Package.swift (Sources/<module>
# for most, checkpassword/<module> for the checkpassword backends).
src_of() {
  local p
  p=$(grep -E "\.(target|systemLibrary)\(name: \"$1\"" Package.swift | head -n1 | sed -n 's/.*path: "\([^"]*\)".*/\1/p')
  echo "${p:-Sources/$1}"
}
is_c_module() { [ -f "$(src_of "$1")/module.modulemap" ]; }
hash_stream() { sha256sum | cut -c1-16; }

declare -A HASH        # module -> hash of what built it
declare -A CLOSURE     # module -> its dependency closure, dependencies first
closure_of() {         # sets REPLY to the closure of $1 (including $1)
  if [ -n "${CLOSURE[$1]+x}" ]; then REPLY="${CLOSURE[$1]}"; return; fi
  local acc="" d c
  for d in $(deps_of "$1"); do
    closure_of "$d"
    for c in $REPLY; do case " $acc " in *" $c "*) ;; *) acc="$acc $c";; esac; done
  done
  acc="$acc $1"
  CLOSURE[$1]="$acc"; REPLY="$acc"
}
include_flags() {      # -I for the C modules among "$@"
  local m
  for m in "$@"; do is_c_module "$m" && printf -- '-I\n%s\n' "$(src_of "$m")"; done
}
link_flags() {         # what the C modules among "$@" link
  local m
  for m in "$@"; do
    is_c_module "$m" && sed -n 's/.*link "\([^"]*\)".*/-l\1/p' "$(src_of "$m")/module.modulemap"
  done
}

# Builds module $1 (after its dependencies) unless its hash is unchanged.
build_module() {
  local m="$1" d h
  [ -n "${HASH[$m]+x}" ] && return 0
  closure_of "$m"; local cl=($REPLY)
  local deps=""
  for d in $(deps_of "$m"); do
    build_module "$d" || return 1
    deps="$deps $d=${HASH[$d]}"
  done
  if is_c_module "$m"; then
    h=$(cat "$(src_of "$m")"/* | hash_stream); HASH[$m]=$h; return 0
  fi
  h=$( { echo "$compiler $deps"; cat "$(src_of "$m")"/*.swift; } | hash_stream)
  HASH[$m]=$h
  if [ -f "$mods/$m.o" ] && [ "$(cat "$mods/$m.hash" 2>/dev/null)" = "$h" ]; then return 0; fi
  echo "== building module $m"
  rm -f "$mods/$m.hash"
  local inc; mapfile -t inc < <(include_flags "${cl[@]}")
  if ! swiftc -c "${flags[@]}" -wmo -module-name "$m" -I "$mods" "${inc[@]}" \
      -emit-module -emit-module-path "$mods/$m.swiftmodule" "$(src_of "$m")"/*.swift \
      -o "$mods/$m.o" > "$mods/$m.build.log" 2>&1; then
    grep -v 'Cannot export local symbol' "$mods/$m.build.log" >&2
    return 1
  fi
  echo "$h" > "$mods/$m.hash"
}

# Builds target $1 into $out/fuzz-$1; returns 1 when it does not build.
build_target() {
  local t="$1" src="$fdir/$1.swift" m c
  local listed; listed=$(head -n1 "$src" | sed -n 's#^// modules: ##p')
  local all=""
  for m in $listed; do
    build_module "$m" || return 1
    closure_of "$m"
    for c in $REPLY; do case " $all " in *" $c "*) ;; *) all="$all $c";; esac; done
  done
  local cl=($all) objs=() imports="" hs=""
  for m in "${cl[@]}"; do
    hs="$hs $m=${HASH[$m]}"
    is_c_module "$m" && continue
    objs+=("$mods/$m.o")
    case " $listed " in *" $m "*) imports="$imports@testable import $m"$'\n';; esac
  done
  # Shared harness pieces (the repository's, also for FUZZ_DIR targets):
  # Fuzz/support/Check.swift always, and
  # Fuzz/support/<Module>.swift for each module the target lists.
  local support=("Fuzz/support/Check.swift")
  for m in $listed; do [ -f "Fuzz/support/$m.swift" ] && support+=("Fuzz/support/$m.swift"); done
  local h; h=$( { echo "$compiler $hs"; cat "$src" "${support[@]}"; } | hash_stream)
  if [ -x "$out/fuzz-$t" ] && [ "$(cat "$out/fuzz-$t.hash" 2>/dev/null)" = "$h" ]; then return 0; fi
  echo "== building fuzz target $t ($listed)"
  rm -f "$out/fuzz-$t.hash"
  local work="$out/$t-src"; mkdir -p "$work"
  { printf '%s' "$imports"; cat "$src"; } > "$work/$t.swift"
  local inc lnk
  mapfile -t inc < <(include_flags "${cl[@]}")
  mapfile -t lnk < <(link_flags "${cl[@]}")
  if ! swiftc "${flags[@]}" -module-name "Fuzz_$t" -I "$mods" "${inc[@]}" "$work/$t.swift" "${support[@]}" "${objs[@]}" \
      "${lnk[@]}" -o "$out/fuzz-$t" > "$out/$t.build.log" 2>&1; then
    grep -v 'Cannot export local symbol' "$out/$t.build.log" >&2
    return 1
  fi
  echo "$h" > "$out/fuzz-$t.hash"
}

# Runs target $1 for $secs seconds; writes its verdict to $out/$1.result.
run_target() {
  local t="$1" corpus="$out/corpus-$1"
  mkdir -p "$corpus"
  rm -f "$out/$t.result"
  # libFuzzer reports a crash itself; Swift's backtracer, started by the
  # crashing target, would be left behind waiting once libFuzzer exits.
  SWIFT_BACKTRACE=enable=no "$out/fuzz-$t" -max_total_time="$secs" -timeout="$per_input" -rss_limit_mb=2048 -max_len="$max_len" \
    -print_final_stats=1 -artifact_prefix="$fdir/artifacts/$t-" "$corpus" "$fdir/corpus/$t" > "$out/$t.log" 2>&1
  local rc=$? runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$out/$t.log" | tail -n1)
  [ -z "$runs" ] && runs=$(grep -oE 'Done [0-9]+ runs' "$out/$t.log" | grep -oE '[0-9]+' | tail -n1)
  echo "$rc ${runs:-0}" > "$out/$t.result"
}

# Build everything first (sequentially: one compiler at a time is enough on
# a small machine), then run.
start=$(date +%s)
broken_build=()
runnable=()
for t in "${targets[@]}"; do
  if [ ! -f "$fdir/$t.swift" ]; then echo "!! no such target: $t" >&2; broken_build+=("$t"); continue; fi
  if build_target "$t"; then runnable+=("$t"); else echo "!! $t did not build" >&2; broken_build+=("$t"); fi
done
echo "== build done in $(( $(date +%s) - start ))s"

running=0
for t in "${runnable[@]}"; do
  echo "== running $t for ${secs}s"
  if [ "$jobs" -gt 1 ]; then
    run_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
  else
    run_target "$t"
  fi
done
wait

total=0
found=()
for t in "${runnable[@]}"; do
  read -r rc runs < "$out/$t.result" || { rc=1; runs=0; }
  total=$((total + runs))
  echo "FIGURE inputs fuzzed $t: $runs"
  if [ "$rc" != 0 ]; then
    found+=("$t")
    echo "!! $t: finding (exit $rc):"
    grep -E "ERROR|Fatal error|SUMMARY|Test unit written|timeout after|out-of-memory" "$out/$t.log" | head -n 6 | sed 's/^/   /'
  fi
done
echo "FIGURE inputs fuzzed total: $total"
if [ ${#broken_build[@]} -gt 0 ]; then
  echo "PROMISE fuzz targets crash-free: BROKEN did not build: ${broken_build[*]}${found:+; findings: ${found[*]}}"
  exit 2
fi
if [ ${#found[@]} -gt 0 ]; then
  echo "PROMISE fuzz targets crash-free: BROKEN findings in ${found[*]} (inputs in $fdir/artifacts/)"
  exit 1
fi
echo "PROMISE fuzz targets crash-free: ok"
exit 0
