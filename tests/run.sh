#!/usr/bin/env bash
# Run relaylease's whole test suite on a fresh Debian machine: install the real programs the
# tests start (Postfix, Dovecot, ucspi-tcp, swaks, ...) when missing, then run every test.
# Needs root (the tests start mail servers and switch users), or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postfix dovecot-core dovecot-pop3d dovecot-imapd ucspi-tcp-ipv6 swaks groff-base redis-server redis-tools openssl libidn12)
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

# Exim conflicts with Postfix (each is the system MTA), so Debian's exim4-daemon-light is
# unpacked beside the tests instead of installed (libidn12 above is its one library not
# already here), with the user its binary runs as.
exim_root=target/test-programs/exim4
if [ ! -x "$exim_root/usr/sbin/exim4" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests/run.sh: unpacking exim4-daemon-light into $exim_root" >&2
  debs=$(mktemp -d)
  chmod 0777 "$debs"
  if ! (cd "$debs" && apt-get download -q exim4-daemon-light >/dev/null 2>&1); then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    (cd "$debs" && apt-get download -q exim4-daemon-light >/dev/null)
  fi
  mkdir -p "$exim_root"
  dpkg -x "$debs"/exim4-daemon-light_*.deb "$exim_root"
  rm -rf "$debs"
fi
if ! getent passwd Debian-exim >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin Debian-exim
fi
export RELAYLEASE_TEST_EXIM="$PWD/$exim_root/usr/sbin/exim4"

cargo test --all-targets "$@"
