#!/usr/bin/env bash
# Starts swift-qmail on its embedded default: a single-user qmail home in
# ./run/qmail (or $QMAIL_HOME), built from this checkout, with a sample
# message queued. When qmail-send is built it runs in the foreground and
# delivers; Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps run

echo "== swift build -c release"
swift build -c release 2>&1 | tail -n 1
BIN="$PWD/.build/release"
HOME_DIR="${QMAIL_HOME:-$PWD/run/qmail}"
FQDN="${QMAIL_FQDN:-mail.example.test}"

"$BIN/qmail-setup" --single-user "$HOME_DIR" "$FQDN"
export QMAIL_HOME="$HOME_DIR"

sample() {
  printf 'From: swift-qmail <postmaster@%s>\nTo: postmaster@%s\nSubject: welcome to swift-qmail\n\nIf you can read this, the queue took mail.\n' "$FQDN" "$FQDN"
}
if [ -x "$HOME_DIR/bin/qmail-inject" ]; then
  sample | "$HOME_DIR/bin/qmail-inject" "postmaster@$FQDN"
else
  sample | "$HOME_DIR/bin/qmail-queue" 1< <(printf 'Fpostmaster@%s\0Tpostmaster@%s\0\0' "$FQDN" "$FQDN")
fi
echo "== queue"
"$HOME_DIR/bin/qmail-qstat"
"$HOME_DIR/bin/qmail-qread"

if [ -x "$HOME_DIR/bin/qmail-start" ]; then
  echo "== starting qmail (Ctrl-C stops it); mail for postmaster lands in $HOME_DIR/alias/Maildir/new"
  "$HOME_DIR/rc" &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; echo "== stopped"; exit 0' INT TERM
  wait $pid
else
  echo "== qmail home ready at $HOME_DIR (delivery arrives with qmail-send)"
fi
