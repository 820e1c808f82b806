#!/bin/sh
# tests/static/cppcheck.sh — Cppcheck (2.10) over tern's C sources with the
# checked-in settings below; prints every finding and "PASS cppcheck" or
# "FAIL cppcheck: N findings"; exit 1 on any finding (issue 11, item 4).
#
# Checks: --enable=warning,portability,performance (errors are always on):
# memory and resource leaks, null pointers, buffer overruns, uninitialised
# data, wrong format strings, undefined shifts, non-portable casts...  Style
# checks are off (they are opinions, not bugs).
#
# Suppressions (each one justified):
#   missingIncludeSystem  cppcheck does not need glibc's headers (it would
#                         only warn that it did not read them)
#   unmatchedSuppression  an inline suppression that no longer fires is fine
#   getpwnamCalled getpwuidCalled getgrnamCalled readdirCalled localtimeCalled
#                         "non-reentrant function" (from --library=posix): every
#                         tern process is single-threaded (prefork), and
#                         readdir_r is deprecated by glibc itself
# False positives in the code are suppressed inline:
#   /* cppcheck-suppress ID */ with the reason on the same line.
cd "$(dirname "$0")/../.." || exit 1
if ! command -v cppcheck >/dev/null 2>&1; then
	echo "SKIP cppcheck: cppcheck is not installed"
	exit 0
fi
. tests/static/sources.sh
out=$(mktemp "${TMPDIR:-/tmp}/tern-cppcheck.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)
# shellcheck disable=SC2086 # SOURCES is a list of paths without blanks
cppcheck --enable=warning,portability,performance --inline-suppr --error-exitcode=1 \
	--std=c11 --language=c --library=posix -j"$jobs" --quiet \
	-I common -D_GNU_SOURCE -D__linux__ -D__x86_64__ \
	--suppress=missingIncludeSystem --suppress=unmatchedSuppression \
	--suppress=getpwnamCalled --suppress=getpwuidCalled --suppress=getgrnamCalled \
	--suppress=readdirCalled --suppress=localtimeCalled \
	--template='{file}:{line}: {severity}: {message} [{id}]' \
	$SOURCES 2>"$out"
rc=$?
cat "$out"
n=$(grep -c ': \(error\|warning\|portability\|performance\): ' "$out")
if [ "$rc" = 0 ] && [ "$n" = 0 ]; then
	echo "PASS cppcheck"
	exit 0
fi
echo "FAIL cppcheck: $n findings (exit status $rc)"
exit 1
