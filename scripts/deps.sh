#!/bin/sh
# deps.sh — make sure the Debian packages the build and the tests need are
# installed.  Quiet when nothing is missing.
#
# Missing packages are installed with apt-get when running as root, or
# through `sudo -n` when that works without a password; otherwise the exact
# command to run is printed and the script exits 1.  On a system without
# dpkg it prints what is needed and exits 0 (the build then finds out).
#
# Used by `make check`, `make asan` and .ci/run (everything), and by
# `make run` as `deps.sh build` (only what the build needs).

# The one list.  build: gcc/make/libc headers, pkg-config, OpenSSL, tinycdb,
# Check.  tests: python3 (black-box harness), swaks (README example),
# procps (ps), strace (durability test), iproute2 (ss, for debugging ports),
# clang + libclang-rt-14-dev (libFuzzer targets in tests/fuzz/); mailutils, git-email +
# libmailtools-perl (real sendmail clients in tests/blackbox/test_sendmail_users.py).
# fiu-utils + libfiu-dev: I/O fault injection (tests/blackbox/test_faults.py).
BUILD_PACKAGES="build-essential pkg-config libssl-dev libcrypt-dev libcdb-dev"
PACKAGES="$BUILD_PACKAGES check cppcheck clang-tidy python3 swaks openssl libio-socket-ssl-perl procps strace iproute2 clang libclang-rt-14-dev dnsmasq-base mailutils git-email libmailtools-perl fiu-utils libfiu-dev valgrind faketime"

# `deps.sh build` (make run) needs only what the build needs.
[ "${1:-}" = build ] && PACKAGES=$BUILD_PACKAGES

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: not a Debian system; tern needs: a C11 compiler, GNU make, pkg-config," >&2
	echo "deps.sh:   OpenSSL (headers), tinycdb (cdb.h, -lcdb), Check, python3, swaks, ps, strace." >&2
	echo "deps.sh:   Debian names: $PACKAGES" >&2
	exit 0
fi

missing=
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
	case "$status" in
	*" ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

missing=${missing# }
echo "deps.sh: missing packages: $missing" >&2

if [ "$(id -u)" = 0 ]; then
	SUDO=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	SUDO="sudo -n"
else
	echo "deps.sh: please run (as root):" >&2
	echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $missing" >&2
	exit 1
fi

echo "deps.sh: installing:$missing" >&2
# shellcheck disable=SC2086
$SUDO apt-get update >&2 || exit 1
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2 || exit 1
