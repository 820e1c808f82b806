#!/bin/sh
# bench/run.sh — tern side by side with Postfix (`make bench`).
#
#   BENCH_SCALE=full|medium|small|tiny|FRACTION  sh bench/run.sh
#
# Installs what the benchmark needs (Debian's postfix for the rival and for
# smtp-source/smtp-sink, gnuplot for the plot) with apt-get as root, or prints
# the command; makes sure no system Postfix runs and that Postfix's package did
# not take port 25; builds the small durable-commit ceiling program into a
# temporary directory; then runs bench/bench.py (every scenario, both
# servers, alternating), which writes bench/results/latest.txt,
# docs/bench-growth.png and docs/benchmarks.md.  It builds nothing of tern:
# run `make all` first.  Not part of `make check`.
#
# Other knobs (see bench/bench.py): BENCH_RUNS, BENCH_ONLY, BENCH_SERVERS,
# BENCH_DIR, BENCH_GROWTH_RUNS, BENCH_NODOCS, B.

set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
B=${B:-build}
case "$B" in /*) ;; *) B="$repo/$B" ;; esac
export B

if [ ! -x "$B/sbin/tern-master" ] || [ ! -x "$B/libexec/tern/smtpd" ]; then
	echo "bench: tern is not built in $B; run make all first" >&2
	exit 1
fi

PACKAGES="postfix gnuplot-nox python3 procps gcc libc6-dev"
missing=
if command -v dpkg-query >/dev/null 2>&1; then
	for p in $PACKAGES; do
		case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" in
		*" ok installed") ;;
		*) missing="$missing $p" ;;
		esac
	done
fi
# gnuplot (any flavour) is enough
if command -v gnuplot >/dev/null 2>&1; then
	missing=$(echo "$missing" | sed 's/ gnuplot-nox//')
fi
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench: missing packages:$missing; please run (as root):" >&2
		echo "  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections" >&2
		echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing" >&2
		exit 1
	fi
	echo "bench: installing:$missing" >&2
	# "No configuration": the package leaves /etc/postfix/main.cf absent and
	# starts no system instance, so nothing listens on port 25.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update >&2 || exit 1
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2 || exit 1
fi

if [ "$(id -u)" != 0 ]; then
	echo "bench: must run as root (Postfix's master starts as root); try: sudo make bench" >&2
	exit 1
fi

# No system Postfix: the package must not have started one (and we start our
# own only with -c DIR).  Stop it when it runs from the default config.
if [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
	echo "bench: stopping the system Postfix (postfix stop)" >&2
	postfix stop >&2
fi
if pgrep -f '/usr/lib/postfix/sbin/master' >/dev/null 2>&1; then
	echo "bench: a Postfix master is running (pgrep -af postfix/sbin/master); stop it first" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench-bin.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
if ! cc -O2 -std=c11 -Wall -Wextra -pthread -o "$work/fsync_ceiling" "$here/fsync_ceiling.c"; then
	echo "bench: could not build bench/fsync_ceiling.c" >&2
	exit 1
fi
BENCH_CEILING_BIN="$work/fsync_ceiling" python3 "$here/bench.py"
rc=$?
# Belt and braces: no Postfix of ours may survive.
if pgrep -f '/usr/lib/postfix/sbin/master -c' >/dev/null 2>&1; then
	echo "bench: warning: a Postfix master still runs: $(pgrep -af '/usr/lib/postfix/sbin/master')" >&2
fi
exit $rc
