# Installs the Debian packages a command needs, only when something is
# missing (apt-get update is slow, so it runs at most once).
# Usage: . scripts/deps.sh; install_deps run|test
install_deps() {
  local want=(libcrypt-dev pkg-config libssl-dev openssl)
  if [ "${1:-}" = test ]; then
    want+=(tinycdb ucspi-tcp fastforward dot-forward daemontools swaks python3-pytest mpop fetchmail getmail6 dnsmasq-base)
  fi
  # test_man.py renders the man pages
  if [ "${1:-}" = test ]; then want+=(man-db groff-base); fi
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "== installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ "${1:-}" = test ] && ! python3 -c 'import pytest' 2>/dev/null; then
    python3 -m pip install -q pytest
  fi
}
