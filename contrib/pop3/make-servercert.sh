#!/bin/sh
# Makes a self-signed certificate and key for STLS/pop3s (and STARTTLS) in
# HOME/control/servercert.pem, as a starting point or for tests.
# Usage: make-servercert.sh [HOME] [hostname]   (HOME defaults to /var/qmail,
# hostname to the first line of HOME/control/me). Replace it with a real
# certificate (chain first, then the key) for clients that verify.
set -e
HOME_DIR=${1:-/var/qmail}
NAME=${2:-`head -1 "$HOME_DIR/control/me" 2>/dev/null || hostname`}
OUT=$HOME_DIR/control/servercert.pem
TMP=$OUT.tmp.$$
umask 077
trap 'rm -f "$TMP" "$TMP.key" "$TMP.crt"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 825 \
  -subj "/CN=$NAME" -addext "subjectAltName=DNS:$NAME" \
  -keyout "$TMP.key" -out "$TMP.crt" 2>/dev/null
cat "$TMP.crt" "$TMP.key" > "$TMP"
chmod 600 "$TMP"
# qmail-smtpd runs as qmaild and reads the certificate at STARTTLS (POP3
# reads it as root): qmaild owns it, as HOME/ids names it (in a single-user
# home that is the home's owner). Nobody else can read the key.
QMAILD=`sed -n 's/^qmaild=//p' "$HOME_DIR/ids" 2>/dev/null || true`
if [ "`id -u`" = 0 ] && [ -n "$QMAILD" ]; then
  chown "$QMAILD" "$TMP"
fi
mv "$TMP" "$OUT"
echo "$OUT: self-signed for $NAME"
