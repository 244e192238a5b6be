#!/bin/sh
# Starts the POP3 service of a qmail home on unprivileged loopback ports, in
# the foreground, for trying things out (scripts/run.sh can call it):
#   port PLAIN: POP3 with STLS;  port TLS: POP3 over implicit TLS (tlswrap).
# Makes a self-signed control/servercert.pem when there is none. Ctrl-C or
# TERM stops both listeners.
# Usage: run-local.sh [HOME] [PLAIN-PORT] [TLS-PORT]   (defaults: $QMAIL_HOME
# or /var/qmail, 11110, 11995)
HOME_DIR=${1:-${QMAIL_HOME:-/var/qmail}}
PLAIN=${2:-11110}
TLS=${3:-11995}
HERE=`dirname "$0"`
BIN=$HOME_DIR/bin
HOST=`head -1 "$HOME_DIR/control/me"`
CP=$BIN/checkpassword-file
[ -x "$CP" ] || CP=$BIN/checkpassword
[ -f "$HOME_DIR/control/servercert.pem" ] || sh "$HERE/make-servercert.sh" "$HOME_DIR" "$HOST" || exit 111
QMAIL_HOME=$HOME_DIR
export QMAIL_HOME
"$BIN/tcpserver" -v -R -H -l "$HOST" 127.0.0.1 "$PLAIN" \
  "$BIN/qmail-popup" "$HOST" "$CP" "$BIN/qmail-pop3d" Maildir &
p1=$!
"$BIN/tcpserver" -v -R -H -l "$HOST" 127.0.0.1 "$TLS" "$BIN/tlswrap" \
  "$BIN/qmail-popup" "$HOST" "$CP" "$BIN/qmail-pop3d" Maildir &
p2=$!
trap 'kill -TERM $p1 $p2 2>/dev/null; wait $p1 $p2 2>/dev/null; echo "== POP3 stopped"; exit 0' INT TERM
echo "== POP3 on 127.0.0.1:$PLAIN (STLS) and 127.0.0.1:$TLS (TLS); Ctrl-C stops"
wait $p1 $p2
