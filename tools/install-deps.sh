#!/usr/bin/env bash
# install-deps.sh - install ringmail's build and test dependencies from Debian 12's archive.
# Idempotent; set RINGMAIL_SKIP_APT=1 to skip when you know they are there.
set -euo pipefail

PKGS=(
  # build
  gcc g++ clang meson ninja-build pkg-config
  liburing-dev libssl-dev librocksdb-dev liblua5.4-dev libzstd-dev libc-ares-dev libbpf-dev libxxhash-dev
  libtomlplusplus-dev libjansson-dev libmicrohttpd-dev libpcre2-dev libhiredis-dev
  # MTA-STS policy fetches over HTTPS (the OpenSSL flavour, as the rest of the tree)
  libcurl4-openssl-dev
  # the roles' seccomp allow-lists (rt/role_seccomp.c)
  libseccomp-dev
  # crypt_r for [auth] passwords_file (yescrypt, SHA-512)
  libcrypt-dev
  # ringctl top's screen
  libncurses-dev
  # sd_notify for ringmail.service (Type=notify, watchdog); systemd-analyze verifies the unit in systemd_test.py
  libsystemd-dev systemd
  # fuzzing runtime for clang's -fsanitize=fuzzer
  libclang-rt-14-dev
  # tests: real tools and peers
  python3 zstd jq swaks procps strace
  # curl: the admin API from outside ringctl (trace_test.py reads an SMTP trace stream over HTTP/1.1)
  curl
  # swaks --tls (auth_test.py), openssl passwd for the test's SHA-512 hash
  libnet-ssleay-perl libio-socket-ssl-perl openssl
  # a real DNS server for test zones, and a recording SMTP server for delivery tests
  unbound python3-aiosmtpd
  # Postfix for its smtp-source/smtp-sink test tools only ("No configuration": no MTA is started)
  postfix
  # promtool checks the /metrics format
  prometheus
  # independent DKIM verifiers for the dkim tests: python3-dkim (dkimverify; python3-nacl for Ed25519,
  # python3-dnspython for its DNS lookups) and libopendkim's opendkim-testmsg
  python3-dkim python3-nacl python3-dnspython opendkim-tools
  # the HTTP injection tests drive the API with Python requests as well as curl
  python3-requests
  # the web console's test (console_test.py): headless Chromium, driven through its DevTools websocket
  chromium python3-websocket
  # terminal UIs under test (ringctl top): send-keys and capture-pane
  tmux
  # mkfs.xfs and xfs_io for the power-cut test (power_loss_test.py: xfs_io -x -c shutdown on a loop mount)
  xfsprogs
  # the write-log power-cut test (power_loss_test.py PWR-03): a FUSE file system logging every change
  fuse3 libfuse3-dev
)

if [ "${RINGMAIL_SKIP_APT:-0}" = 1 ]; then
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | "${SUDO[@]}" debconf-set-selections
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null
echo "install-deps: ${#PKGS[@]} packages present"
