#!/usr/bin/env bash
# Starts swift-qmail on its embedded default: a single-user qmail home in
# ./run/qmail (or $QMAIL_HOME) built from this checkout, with queue and
# delivery running, a sample domain (example.test) whose postmaster mailbox
# gets a fresh password printed here, and POP3 on loopback ports 11110
# (STLS) and 11995 (implicit TLS, self-signed certificate). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps run

echo "== swift build -c release"
swift build -c release 2>&1 | tail -n 1
BIN="$PWD/.build/release"
FQDN="${QMAIL_FQDN:-mail.example.test}"

# Mailboxes never belong to root. Run as root, the system runs as an
# unprivileged account (created when missing) in a home it can reach;
# run as anyone else, as that user in ./run/qmail.
if [ "$(id -u)" -eq 0 ]; then
  RUN_USER="${QMAIL_RUN_USER:-swiftqmail}"
  id "$RUN_USER" >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$RUN_USER"
  HOME_DIR="${QMAIL_HOME:-/var/tmp/swift-qmail}"
  "$BIN/qmail-setup" --owner "$RUN_USER" "$HOME_DIR" "$FQDN"
  RUNAS=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups --)
else
  HOME_DIR="${QMAIL_HOME:-$PWD/run/qmail}"
  "$BIN/qmail-setup" --single-user "$HOME_DIR" "$FQDN"
  RUNAS=()
fi
export QMAIL_HOME="$HOME_DIR"

DOMAIN="${QMAIL_DOMAIN:-example.test}"
POP3_PORT="${POP3_PORT:-11110}"
POP3S_PORT="${POP3S_PORT:-11995}"
B="$HOME_DIR/bin"

# The sample domain and its postmaster mailbox, with a fresh password each run.
PASS=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 16)
if "$B/vdominfo" -n "$DOMAIN" >/dev/null 2>&1; then
  printf '%s\n' "$PASS" | "${RUNAS[@]}" "$B/vpasswd" "postmaster@$DOMAIN" - >/dev/null
else
  printf '%s\n' "$PASS" | "${RUNAS[@]}" "$B/vadddomain" "$DOMAIN" - >/dev/null
fi

printf 'From: swift-qmail <postmaster@%s>\nTo: postmaster@%s\nSubject: welcome to swift-qmail\n\nIf you can read this, mail went through the queue, qmail-send,\nqmail-local and vdelivermail into this Maildir, and POP3 brought it to you.\n' \
  "$FQDN" "$DOMAIN" | "${RUNAS[@]}" "$B/qmail-inject" -f "postmaster@$FQDN" "postmaster@$DOMAIN"

cleanup() {
  kill -TERM "$send_pid" "$pop_pid" 2>/dev/null || true
  wait "$send_pid" "$pop_pid" 2>/dev/null || true
  echo "== stopped"
  exit 0
}
# Own sessions, so that Ctrl-C reaches this script only and each service
# gets a clean SIGTERM (qmail-send finishes deliveries in progress).
setsid "${RUNAS[@]}" "$HOME_DIR/rc" > "$HOME_DIR/send.log" 2>&1 &
send_pid=$!
cp contrib/pop3/run-local.sh contrib/pop3/make-servercert.sh "$HOME_DIR/boot/"
setsid "${RUNAS[@]}" sh "$HOME_DIR/boot/run-local.sh" "$HOME_DIR" "$POP3_PORT" "$POP3S_PORT" > "$HOME_DIR/pop3.log" 2>&1 &
pop_pid=$!
trap cleanup INT TERM

cat <<EOT

swift-qmail is running from $HOME_DIR
  mailbox   postmaster@$DOMAIN   password $PASS
  POP3      127.0.0.1:$POP3_PORT (STLS)   127.0.0.1:$POP3S_PORT (implicit TLS, self-signed certificate)
  send mail $B/qmail-inject postmaster@$DOMAIN < message
  logs      $HOME_DIR/send.log  $HOME_DIR/pop3.log
  try       python3 -c "import poplib; p=poplib.POP3('127.0.0.1',$POP3_PORT); p.user('postmaster@$DOMAIN'); p.pass_('$PASS'); print(p.stat())"
Ctrl-C stops it.
EOT
wait "$send_pid" "$pop_pid"
