#!/usr/bin/env bash
# Run relaylease's whole test suite on a fresh Debian machine: install the real programs the
# tests start (Postfix, Dovecot, ucspi-tcp, swaks, ...) when missing, then run every test
# (or the targets named: ./tests/run.sh --test sendmail).
# Needs root (the tests start mail servers and switch users), or sudo. A plain `cargo test`
# as any user runs the rest and lists what it left out, and why.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postfix dovecot-core dovecot-pop3d dovecot-imapd ucspi-tcp-ipv6 swaks groff-base redis-server redis-sentinel redis-tools openssl libidn12 curl
  m4 libldap-2.5-0 libwrap0 systemd faketime logrotate lintian man-db)
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

# Exim and Sendmail conflict with Postfix (each is the system MTA), so Debian's
# exim4-daemon-light and sendmail-bin (with sendmail-base and sendmail-cf, the m4 files that
# build a sendmail.cf) are unpacked beside the tests instead of installed. The libraries they
# link that are not already here (libidn12 for Exim; libldap-2.5-0 and libwrap0 for
# sendmail) and m4 are in the list above. unpack DIR FILE PACKAGE... downloads the packages
# and extracts them into DIR unless DIR/FILE is there; a half-done unpack is never taken
# for a whole one, as DIR appears only when every package is in it.
unpack() {
  local root=$1 file=$2
  shift 2
  [ -e "$root/$file" ] && return
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests/run.sh: unpacking $* into $root" >&2
  local debs
  debs=$(mktemp -d)
  chmod 0777 "$debs"
  if ! (cd "$debs" && apt-get download -q "$@" >/dev/null 2>&1); then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    (cd "$debs" && apt-get download -q "$@" >/dev/null)
  fi
  rm -rf "$root.new"
  mkdir -p "$root.new"
  for deb in "$debs"/*.deb; do
    dpkg -x "$deb" "$root.new"
  done
  rm -rf "$debs" "$root"
  mv "$root.new" "$root"
}
exim_root=target/test-programs/exim4
unpack "$exim_root" usr/sbin/exim4 exim4-daemon-light
sendmail_root=target/test-programs/sendmail
unpack "$sendmail_root" usr/libexec/sendmail/sendmail sendmail-bin sendmail-base sendmail-cf
if ! getent passwd Debian-exim >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin Debian-exim
fi
# The package tests build the .deb with cargo-deb (tests/integration/package.rs).
if ! cargo deb --version >/dev/null 2>&1; then
  echo "tests/run.sh: installing cargo-deb" >&2
  cargo install cargo-deb --version 3.8.0 --locked
fi

export RELAYLEASE_TEST_EXIM="$PWD/$exim_root/usr/sbin/exim4"
export RELAYLEASE_TEST_SENDMAIL="$PWD/$sendmail_root"

# Every target, unless the arguments name some (./tests/run.sh --test sendmail): cargo would
# run every target with --all-targets beside them.
targets=(--all-targets)
for a in "$@"; do
  case "$a" in
    --) break ;;
    --lib | --bins | --tests | --benches | --examples | --doc | --all-targets) targets=() ;;
    --bin | --bin=* | --test | --test=* | --bench | --bench=* | --example | --example=*) targets=() ;;
  esac
done
# Tests that need root or the programs above are #[ignore]d for a plain `cargo test` (which
# says so, with the reason); here every one of them runs.
args=("$@")
case " ${args[*]} " in
  *" -- "*) args+=(--include-ignored) ;;
  *) args+=(-- --include-ignored) ;;
esac
cargo test "${targets[@]}" "${args[@]}"
