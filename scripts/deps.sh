# Installs the Debian packages a command needs, only when something is
# missing (apt-get update is slow, so it runs at most once).
# Usage: . scripts/deps.sh; install_deps run|test
install_deps() {
  local want=(libcrypt-dev pkg-config libssl-dev openssl libldap-dev libmariadb-dev)
  # scripts/run.sh logs every service through multilog
  if [ "${1:-}" = run ]; then want+=(daemontools); fi
  if [ "${1:-}" = test ]; then
    want+=(tinycdb ucspi-tcp fastforward dot-forward daemontools swaks msmtp python3-pytest mpop fetchmail getmail6 dnsmasq-base slapd ldap-utils mariadb-server mariadb-client)
  fi
  # proof/security.py scans the TLS services with sslscan (a 6-second install)
  if [ "${1:-}" = test ]; then want+=(sslscan); fi
  # test_man.py renders the man pages
  if [ "${1:-}" = test ]; then want+=(man-db groff-base); fi
  # DKIM signatures are checked with dkimpy (Ed25519 needs nacl) and OpenDKIM
  if [ "${1:-}" = test ]; then want+=(python3-dkim python3-nacl opendkim opendkim-tools); fi
  # qmail-remote is tested against a private Postfix instance
  if [ "${1:-}" = test ]; then want+=(postfix); fi
  # test_run.py checks the login lines with contrib/fail2ban's filter
  if [ "${1:-}" = test ]; then want+=(fail2ban); fi
  # test_filter.py scans with private clamd, spamd and rspamd instances
  if [ "${1:-}" = test ]; then want+=(clamav-daemon spamassassin spamc rspamd); fi
  # test_webadmin.py drives qmail-webadmin with a headless Chromium (selenium)
  if [ "${1:-}" = test ]; then want+=(chromium chromium-driver); fi
  # the cluster tests: hosts in network namespaces (ip), POP3 with curl
  if [ "${1:-}" = test ]; then want+=(iproute2 curl); fi
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "== installing: ${missing[*]}"
    # slapd asks for a directory of its own unless told not to; the tests
    # run private servers, so the package's own configuration is skipped.
    if printf '%s\n' "${missing[@]}" | grep -qx slapd; then
      echo "slapd slapd/no_configuration boolean true" | $sudo debconf-set-selections
    fi
    # Postfix too: no system configuration, the tests run their own instance.
    if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
      echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ "${1:-}" = test ] && ! python3 -c 'import pytest' 2>/dev/null; then
    python3 -m pip install -q pytest
  fi
  # test_spf.py serves the openspf suite's zones (YAML) with a dnslib server
  if [ "${1:-}" = test ] && ! python3 -c 'import dnslib, yaml' 2>/dev/null; then
    python3 -m pip install -q dnslib pyyaml
  fi
  # test_srs.py checks our SRS addresses against a second implementation
  if [ "${1:-}" = test ] && ! python3 -c 'import srslib' 2>/dev/null; then
    python3 -m pip install -q srslib
  fi
  if [ "${1:-}" = test ] && ! python3 -c 'import selenium' 2>/dev/null; then
    python3 -m pip install -q selenium
  fi
  # A test that fails once and passes on a rerun is reported as a rerun
  # ("R" and the summary line), not hidden; see scripts/test.sh.
  if [ "${1:-}" = test ] && ! python3 -c 'import pytest_rerunfailures' 2>/dev/null; then
    python3 -m pip install -q pytest-rerunfailures || echo "== pytest-rerunfailures not installed: no reruns"
  fi
}
