#!/usr/bin/env bash
# Names every program in a build directory (default .build/release): a
# symbolic link per program to the multi-call file that holds it
# (Package.swift's `programs`; each file's `--list` prints its names), so
# that DIR/qmail-local and the like run as before. Run it after
# `swift build -c release`; the scripts here do. Symbolic links, not hard
# ones: a rebuild writes a new file, and the names follow it.
set -euo pipefail
DIR="${1:-$(cd "$(dirname "$0")/.." && pwd)/.build/release}"
for b in "$DIR"/swift-qmail*; do
  [ -f "$b" ] && [ -x "$b" ] || continue
  names=$("$b" --list) || { echo "link-programs.sh: $b --list failed" >&2; exit 111; }
  for n in $names; do ln -sfn "$(basename "$b")" "$DIR/$n"; done
done
