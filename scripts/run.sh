#!/usr/bin/env bash
# Starts swift-qmail on its embedded default: a single-user qmail home in
# ./run/qmail (or $QMAIL_HOME) built from this checkout, serving the sample
# domain example.test on loopback (127.0.0.1 and ::1): SMTP for incoming
# mail, submission (STARTTLS, then AUTH), submission over implicit TLS, POP3
# with STLS, POP3 over TLS, the web administration (HTTPS, 127.0.0.1 only),
# and qmail-send delivering locally and outwards (by MX, or through
# $SMARTHOST). Every service logs through multilog into
# HOME/log/<service>/. Ctrl-C stops it; running it again restarts it with
# the same mailboxes and password.
#
# Usage: scripts/run.sh [--reset-password]
# Environment: QMAIL_HOME, QMAIL_DOMAIN, QMAIL_FQDN, QMAIL_LISTEN (addresses,
# default "127.0.0.1 ::1"), SMTP_PORT, SUBMISSION_PORT, SMTPS_PORT,
# POP3_PORT, POP3S_PORT, WEBADMIN_PORT, SMARTHOST (host:port for all outgoing mail; it is
# written to control/smtproutes and stays there until changed),
# SMARTHOST_USER and SMARTHOST_PASSWORD (qmail-remote logs in to the
# smarthost with them, only over TLS; kept in control/smtproutes, mode 600),
# QMAIL_RUN_USER (run as root: the account that owns the home), QMAIL_BIN
# (use programs already built there: no package check, no build).
set -euo pipefail
cd "$(dirname "$0")/.."
ME="run.sh"
die() { echo "$ME: $*" >&2; exit 1; }

RESET=0
for a in "$@"; do
  case "$a" in
    --reset-password) RESET=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $a (usage: scripts/run.sh [--reset-password])" ;;
  esac
done

FQDN="${QMAIL_FQDN:-mail.example.test}"
DOMAIN="${QMAIL_DOMAIN:-example.test}"
LISTEN="${QMAIL_LISTEN:-127.0.0.1 ::1}"
SMTP_PORT="${SMTP_PORT:-10025}"
SUBMISSION_PORT="${SUBMISSION_PORT:-10587}"
SMTPS_PORT="${SMTPS_PORT:-10465}"
POP3_PORT="${POP3_PORT:-11110}"
POP3S_PORT="${POP3S_PORT:-11995}"
WEBADMIN_PORT="${WEBADMIN_PORT:-10443}"
if [ "$(id -u)" -eq 0 ]; then
  RUN_USER="${QMAIL_RUN_USER:-swiftqmail}"
  HOME_DIR="${QMAIL_HOME:-/var/tmp/swift-qmail}"
else
  HOME_DIR="${QMAIL_HOME:-$PWD/run/qmail}"
fi
B="$HOME_DIR/bin"

# ---- before anything changes: is another instance, or anything else, here?
# A listener answers a connect at once; nothing listening refuses at once.
listening() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
for pv in SMTP_PORT SUBMISSION_PORT SMTPS_PORT POP3_PORT POP3S_PORT; do
  port=${!pv}
  case "$port" in ''|*[!0-9]*) die "$pv=$port is not a port number" ;; esac
  for addr in $LISTEN; do
    if listening "$addr" "$port"; then
      die "port $port on $addr ($pv) is in use by another program: stop it, or choose another port with $pv=..."
    fi
  done
done
case "$WEBADMIN_PORT" in ''|*[!0-9]*) die "WEBADMIN_PORT=$WEBADMIN_PORT is not a port number" ;; esac
if listening 127.0.0.1 "$WEBADMIN_PORT"; then
  die "port $WEBADMIN_PORT on 127.0.0.1 (WEBADMIN_PORT) is in use by another program: stop it, or choose another port with WEBADMIN_PORT=..."
fi
case "${SMARTHOST:-}" in *[!A-Za-z0-9.:\[\]-]*) die "SMARTHOST=$SMARTHOST is not host:port" ;; esac
# The login goes into smtproutes after the relay: "user password" (the user
# ends at the first blank; a leading "-" there would allow AUTH in clear).
if [ -n "${SMARTHOST_USER:-}${SMARTHOST_PASSWORD:-}" ]; then
  [ -n "${SMARTHOST:-}" ] || die "SMARTHOST_USER/SMARTHOST_PASSWORD need SMARTHOST=host:port (the relay to log in to)"
  [ -n "${SMARTHOST_USER:-}" ] && [ -n "${SMARTHOST_PASSWORD:-}" ] || die "set both SMARTHOST_USER and SMARTHOST_PASSWORD, or neither"
  case "$SMARTHOST_USER" in -*|*[[:space:]]*) die "SMARTHOST_USER must not contain blanks or start with -" ;; esac
  case "$SMARTHOST_PASSWORD" in [[:space:]]*|*[[:space:]]|*$'\n'*) die "SMARTHOST_PASSWORD must not start or end with a blank, nor hold a newline" ;; esac
fi
# qmail-send holds queue/lock/sendmutex (flock) while it runs.
if [ -e "$HOME_DIR/queue/lock/sendmutex" ]; then
  rc=0; flock -n -E 75 "$HOME_DIR/queue/lock/sendmutex" true || rc=$?
  [ "$rc" -ne 75 ] || die "a qmail-send is already running on $HOME_DIR (queue/lock/sendmutex is locked): stop it first"
fi

if [ -n "${QMAIL_BIN:-}" ]; then
  BUILD="$QMAIL_BIN"
else
  . scripts/deps.sh
  install_deps run
  echo "== swift build -c release"
  swift build -c release 2>&1 | tail -n 1
  scripts/link-programs.sh
  BUILD="$PWD/.build/release"
fi

# Mailboxes never belong to root. Run as root, the system runs as an
# unprivileged account (created when missing) in a home it can reach;
# run as anyone else, as that user in ./run/qmail.
if [ "$(id -u)" -eq 0 ]; then
  id "$RUN_USER" >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$RUN_USER"
  "$BUILD/qmail-setup" --owner "$RUN_USER" "$HOME_DIR" "$FQDN" >/dev/null
  RUNAS=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups --)
else
  RUN_USER="$(id -un)"
  "$BUILD/qmail-setup" --single-user "$HOME_DIR" "$FQDN" >/dev/null
  RUNAS=()
fi
export QMAIL_HOME="$HOME_DIR"
as_owner() { if [ ${#RUNAS[@]} -gt 0 ]; then "${RUNAS[@]}" "$@"; else "$@"; fi; }

# ---- the sample domain; its postmaster password is kept (mode 600) in the
# home across restarts, and replaced only with --reset-password.
PWFILE="$HOME_DIR/postmaster-password"
NEWDOMAIN=0
if [ "$RESET" -eq 1 ] || [ ! -s "$PWFILE" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 16 > "$PWFILE.tmp")
  mv "$PWFILE.tmp" "$PWFILE"
  SETPW=1
else
  SETPW=0
fi
PASS="$(cat "$PWFILE")"
if ! as_owner "$B/vdominfo" -n "$DOMAIN" >/dev/null 2>&1; then
  # (its note that qmail-send is not running yet is expected here)
  out="$(printf '%s\n' "$PASS" | as_owner "$B/vadddomain" "$DOMAIN" - 2>&1)" || die "vadddomain $DOMAIN failed: $out"
  NEWDOMAIN=1
elif [ "$SETPW" -eq 1 ]; then
  printf '%s\n' "$PASS" | as_owner "$B/vpasswd" "postmaster@$DOMAIN" - >/dev/null
fi
# The sample domain's postmaster administers the whole system on the web
# (qmail-webadmin); an existing list is the admin's and stays.
if [ ! -e "$HOME_DIR/control/webadmins" ]; then
  as_owner sh -c 'printf "postmaster@%s\n" "$1" > "$2.tmp" && mv "$2.tmp" "$2"' sh "$DOMAIN" "$HOME_DIR/control/webadmins"
fi
# A login without @domain means this domain (checkpassword-file, qmail-rcptcheck).
as_owner sh -c 'printf "%s\n" "$1" > "$2.tmp" && mv "$2.tmp" "$2"' sh "$DOMAIN" "$HOME_DIR/control/vdefaultdomain"
# What qmailctl doctor checks: the ports these services need (HOME/ports)
# and qmail-send's log, for the reasons deferred mail waits (qmailctl.conf).
{
  for addr in $LISTEN; do
    for sp in "smtpd $SMTP_PORT" "submission $SUBMISSION_PORT" "smtps $SMTPS_PORT" "pop3d $POP3_PORT" "pop3ds $POP3S_PORT"; do
      echo "$sp $addr"
    done
  done
} | as_owner sh -c 'cat > "$1.tmp" && mv "$1.tmp" "$1"' sh "$HOME_DIR/ports"
if ! grep -qs '^sendlog=' "$HOME_DIR/qmailctl.conf"; then
  echo "sendlog=$HOME_DIR/log/send" | as_owner sh -c 'cat >> "$1"' sh "$HOME_DIR/qmailctl.conf"
fi
if [ -n "${SMARTHOST:-}" ]; then
  # Mode 600, owned by the home's owner (qmail-remote's account here); the
  # password goes through a pipe, never onto a command line.
  if [ -n "${SMARTHOST_USER:-}" ]; then
    printf ':%s %s %s\n' "$SMARTHOST" "$SMARTHOST_USER" "$SMARTHOST_PASSWORD"
  else
    printf ':%s\n' "$SMARTHOST"
  fi | as_owner sh -c 'umask 077 && cat > "$1.tmp" && mv "$1.tmp" "$1"' sh "$HOME_DIR/control/smtproutes"
fi
if [ ! -f "$HOME_DIR/control/servercert.pem" ]; then
  as_owner sh contrib/pop3/make-servercert.sh "$HOME_DIR" "$FQDN" >/dev/null
fi
if [ "$NEWDOMAIN" -eq 1 ]; then
  printf 'From: swift-qmail <postmaster@%s>\nTo: postmaster@%s\nSubject: welcome to swift-qmail\n\nIf you can read this, mail went through the queue, qmail-send,\nqmail-local and vdelivermail into this Maildir, and POP3 brought it to you.\n' \
    "$FQDN" "$DOMAIN" | as_owner "$B/qmail-inject" -f "postmaster@$FQDN" "postmaster@$DOMAIN"
fi

# ---- the services. Each writes into a fifo read by its own multilog (as
# the home's owner), so logs are stamped (TAI64N), appended and rotated.
# Each runs in a session of its own: Ctrl-C reaches this script only, which
# then stops each service with SIGTERM (qmail-send finishes its deliveries).
FIFOS="$(mktemp -d)"
svc_pids=(); svc_what=(); svc_log=(); log_pids=()
logger() {
  local d="$HOME_DIR/log/$1"
  as_owner mkdir -p "$d"
  mkfifo "$FIFOS/$1"
  setsid "${RUNAS[@]}" multilog t s1000000 n20 "$d" < "$FIFOS/$1" &
  log_pids+=($!)
}
service() {  # log-name description command...
  local name=$1 what=$2
  shift 2
  setsid "${RUNAS[@]}" "$@" > "$FIFOS/$name" 2>&1 &
  svc_pids+=($!); svc_what+=("$what"); svc_log+=("$name")
}
cleanup() {
  trap '' INT TERM
  for p in "${svc_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${svc_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # The loggers end when their services have closed the fifos.
  for p in "${log_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$FIFOS"
}
trap 'cleanup; echo "== stopped"; exit 0' INT TERM
# Its last complaint, without multilog's stamp.
last_error() { tail -n 20 "$HOME_DIR/log/$1/current" 2>/dev/null | grep -E 'fatal|unable|error' | tail -n 1 | cut -d' ' -f2- || true; }

HOST="$FQDN"
CP="$B/checkpassword-file"
uid="$(id -u "$RUN_USER")"; gid="$(id -g "$RUN_USER")"
AUTHSMTPD=("$B/qmail-smtpd-auth" -u "$uid" -g "$gid" "$CP" /bin/true -- "$B/qmail-smtpd" "$HOST")
# Content filtering: once control/clamd or control/spamd names a scanner,
# every SMTP service queues through qmail-filter (qmail-smtpd keeps one
# filter process per connection, as with qmail-queue itself).
FILTER=(); FILTERED="off (write control/clamd or control/spamd to turn it on)"
if [ -s "$HOME_DIR/control/clamd" ] || [ -s "$HOME_DIR/control/spamd" ]; then
  FILTER=(QMAILQUEUE="$B/qmail-filter")
  FILTERED="qmail-filter:"
  if [ -s "$HOME_DIR/control/clamd" ]; then FILTERED+=" clamd $(head -n 1 "$HOME_DIR/control/clamd")"; fi
  if [ -s "$HOME_DIR/control/spamd" ]; then FILTERED+=" $(head -n 1 "$HOME_DIR/control/spamd")"; fi
fi
for l in send smtpd submission smtps pop3d pop3ds webadmin; do logger "$l"; done
service send "qmail-send" "$HOME_DIR/rc"
ports=()
for addr in $LISTEN; do
  # incoming mail: rcpthosts (the hosted domains), each mailbox checked at
  # RCPT; AUTH only after STARTTLS.
  service smtpd "SMTP on [$addr]:$SMTP_PORT" env QMAIL_HOME="$HOME_DIR" ${FILTER[@]+"${FILTER[@]}"} RCPTCHECK="$B/qmail-rcptcheck" FORCETLS=1 \
    "$B/tcpserver" -v -R -H -l "$HOST" -c 40 "$addr" "$SMTP_PORT" "${AUTHSMTPD[@]}"
  # submission (587's role): STARTTLS, then AUTH, before any mail
  service submission "submission on [$addr]:$SUBMISSION_PORT" env -u RELAYCLIENT QMAIL_HOME="$HOME_DIR" ${FILTER[@]+"${FILTER[@]}"} SMTPAUTH='!' FORCETLS=1 \
    "$B/tcpserver" -v -R -H -l "$HOST" -c 40 "$addr" "$SUBMISSION_PORT" "${AUTHSMTPD[@]}"
  # submission over implicit TLS (465's role, RFC 8314)
  service smtps "submission over TLS on [$addr]:$SMTPS_PORT" env -u RELAYCLIENT QMAIL_HOME="$HOME_DIR" ${FILTER[@]+"${FILTER[@]}"} SMTPAUTH='!' FORCETLS=1 \
    "$B/tcpserver" -v -R -H -l "$HOST" -c 40 "$addr" "$SMTPS_PORT" "$B/tlswrap" "${AUTHSMTPD[@]}"
  service pop3d "POP3 on [$addr]:$POP3_PORT" env QMAIL_HOME="$HOME_DIR" \
    "$B/tcpserver" -v -R -H -l "$HOST" -c 40 "$addr" "$POP3_PORT" "$B/qmail-popup" "$HOST" "$CP" "$B/qmail-pop3d" Maildir
  service pop3ds "POP3 over TLS on [$addr]:$POP3S_PORT" env QMAIL_HOME="$HOME_DIR" \
    "$B/tcpserver" -v -R -H -l "$HOST" -c 40 "$addr" "$POP3S_PORT" "$B/tlswrap" "$B/qmail-popup" "$HOST" "$CP" "$B/qmail-pop3d" Maildir
  for p in "$SMTP_PORT" "$SUBMISSION_PORT" "$SMTPS_PORT" "$POP3_PORT" "$POP3S_PORT"; do ports+=("$addr $p"); done
done
# the web administration: HTTPS with the same certificate, loopback only
service webadmin "web administration on https://127.0.0.1:$WEBADMIN_PORT/" env QMAIL_HOME="$HOME_DIR" \
  "$B/qmail-webadmin" -l 127.0.0.1 -p "$WEBADMIN_PORT"
ports+=("127.0.0.1 $WEBADMIN_PORT")

# ---- did everything start? Each listener must answer, and every service
# still be ours a moment later (one that lost its port to another program
# has exited by then, while that program answers in its place).
failed() {
  local i=$1
  echo "$ME: ${svc_what[$i]} did not start: $(last_error "${svc_log[$i]}") (log: $HOME_DIR/log/${svc_log[$i]}/current)" >&2
  cleanup
  exit 1
}
check_alive() { local i; for i in "${!svc_pids[@]}"; do kill -0 "${svc_pids[$i]}" 2>/dev/null || { wait "${svc_pids[$i]}" 2>/dev/null || true; failed "$i"; }; done; }
deadline=$((SECONDS + 20))
for ap in "${ports[@]}"; do
  until listening $ap; do
    check_alive
    if [ "$SECONDS" -ge "$deadline" ]; then
      cleanup
      die "nothing answers on ${ap// /:} after 20 s (logs: $HOME_DIR/log)"
    fi
    sleep 0.1
  done
done
sleep 0.5
check_alive

SVG="$HOME_DIR/log/report.svg"
# The banner's smarthost line: relay and user from smtproutes, never the password.
outgoing() {
  local f="$HOME_DIR/control/smtproutes"
  if [ ! -s "$f" ]; then
    echo "direct to each domain's MX (SMARTHOST=host:port routes it through a relay)"
  else
    as_owner awk 'NR == 1 { sub(/^[^:]*:/, ""); printf "through %s", $1
                            if ($2 != "") printf ", logging in as %s over TLS", $2 }' "$f"
    echo " (control/smtproutes)"
  fi
}
cat <<EOT

swift-qmail is running from $HOME_DIR (as $RUN_USER), listening on ${LISTEN// / and }
  mailbox     postmaster@$DOMAIN (or just postmaster)   password $PASS
              (kept in $PWFILE; scripts/run.sh --reset-password makes a new one)
  SMTP        port $SMTP_PORT: mail for the hosted domains (rcpthosts), no relaying
  submission  port $SUBMISSION_PORT: STARTTLS, then AUTH     port $SMTPS_PORT: implicit TLS, then AUTH
  POP3        port $POP3_PORT: STLS                      port $POP3S_PORT: implicit TLS
  web admin   https://127.0.0.1:$WEBADMIN_PORT/ (log in as postmaster@$DOMAIN; control/webadmins)
  TLS         self-signed certificate $HOME_DIR/control/servercert.pem
  outgoing    $(outgoing)
  filter      $FILTERED
  admin       export QMAIL_HOME=$HOME_DIR PATH=$B:\$PATH
              vadddomain other.test; vadduser joe@$DOMAIN; vuserinfo postmaster@$DOMAIN; qmailctl doctor
  logs        $HOME_DIR/log/{send,smtpd,submission,smtps,pop3d,pop3ds,webadmin}/current (tai64nlocal < FILE)
  report      $B/qmail-report --svg $SVG $HOME_DIR/log/send/current
  try         swaks --server 127.0.0.1:$SUBMISSION_PORT -tls --auth-user postmaster@$DOMAIN --auth-password $PASS --to postmaster@$DOMAIN
              curl -k --ssl-reqd pop3://127.0.0.1:$POP3_PORT/1 -u postmaster@$DOMAIN:$PASS
Ctrl-C stops it.
EOT

# Runs until Ctrl-C, or until a service ends by itself (then says which).
while true; do
  wait -n "${svc_pids[@]}" || true
  for i in "${!svc_pids[@]}"; do
    if ! kill -0 "${svc_pids[$i]}" 2>/dev/null; then
      echo "$ME: ${svc_what[$i]} stopped by itself: $(last_error "${svc_log[$i]}"); stopping everything" >&2
      cleanup
      exit 1
    fi
  done
done
