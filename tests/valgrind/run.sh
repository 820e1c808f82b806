#!/bin/sh
# tests/valgrind/run.sh — `make valgrind`: the black-box suite with every tern
# daemon under valgrind memcheck, then tests/valgrind/report.sh on the logs.
#
# TERN_VALGRIND=DIR makes tests/blackbox/tern_harness.py point each instance's
# daemon_directory at wrapper scripts that exec the real daemon under memcheck
# (logs DIR/vg.PID.log); TERN_TEST_SLOW scales the harness's waits.
#
# Environment:
#   VALGRIND_TESTS   space-separated patterns for tests/run.sh (default
#                    "blackbox/": every black-box test)
#   TERN_TEST_SLOW   wait factor (default 10)
#   TEST_TIMEOUT     per test program, seconds (default 1800)
# Exit status: 0 when every test passed and no log shows a memcheck error.

cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
case "$B" in
/*) ;;
*) B="$(pwd)/$B" ;;
esac
export B
if ! command -v valgrind >/dev/null 2>&1; then
	echo "make valgrind: valgrind is not installed (Debian: apt-get install valgrind)" >&2
	exit 1
fi
logs="$B/valgrind"
rm -rf "$logs"
mkdir -p "$logs" || exit 1
TERN_VALGRIND=$logs
TERN_TEST_SLOW=${TERN_TEST_SLOW:-10}
TEST_TIMEOUT=${TEST_TIMEOUT:-1800}
export TERN_VALGRIND TERN_TEST_SLOW TEST_TIMEOUT
rc=0
out=$(mktemp "${TMPDIR:-/tmp}/tern-vg.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT
for p in ${VALGRIND_TESTS:-blackbox/}; do
	sh tests/run.sh "$p" | tee "$out" || rc=1
	tail -n 1 "$out" >>"$logs/summary"
done
echo "tests: $(awk '{ p += $1; f += $3 } END { print p " passed, " f " failed" }' "$logs/summary")"
sh tests/valgrind/report.sh "$logs" || rc=1
exit $rc
