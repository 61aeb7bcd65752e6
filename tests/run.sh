#!/usr/bin/env bash
# Run relaylease's whole test suite on a fresh Debian machine: install the real programs the
# tests start (Postfix, Dovecot, ucspi-tcp, swaks, ...) when missing, then run every test.
# Needs root (the tests start mail servers and switch users), or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postfix dovecot-core dovecot-pop3d dovecot-imapd ucspi-tcp-ipv6 swaks groff-base redis-server redis-tools openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests/run.sh: installing ${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

cargo test --all-targets "$@"
