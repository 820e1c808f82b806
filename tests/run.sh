#!/bin/sh
# tests/run.sh — run every test of the build in $B (default: build) and end
# with exactly one line "N passed, N failed"; exit 1 when anything failed.
#
#   unit tests:      $B/tests/unit/*/test_*   (Check runners; each check counts;
#                    a runner that crashes, times out, or prints no
#                    "NN%: Checks: N, Failures: F, Errors: E" line counts as 1 failure)
#   black-box tests: tests/blackbox/test_*.py (print "PASS name" / "FAIL name: reason"
#                    lines; a script that exits non-zero without a FAIL line, or
#                    prints nothing, counts as 1 failure)
#   static analysis: tests/static/cppcheck.sh + clang-tidy.sh, one entry, only
#                    when installed (TERN_NO_TIDY=1: cppcheck alone)
#   fuzz targets:    tests/fuzz/fuzz_*.c through tests/fuzz/run.sh, only when
#                    clang is installed; each target counts as 1 pass or fail
#
# Each program gets at most $TEST_TIMEOUT seconds (default 300).
# Usage: B=build sh tests/run.sh [PATTERN]   (PATTERN: only tests whose path contains it)

cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
B=${B:-build}
case "$B" in
/*) ;;
*) B="$TOP/$B" ;;
esac
export B
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
PATTERN=${1:-}

passed=0
failed=0
failures=
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-run.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# note_failure NAME REASON
note_failure() {
	failures="$failures
  FAIL $1: $2"
}

# run_unit BINARY
run_unit() {
	name=${1#"$B"/tests/unit/}
	out="$tmp/out"
	timeout "$TEST_TIMEOUT" "$1" >"$out" 2>&1
	rc=$?
	# Sum every Check summary line (a runner may print more than one).
	summary=$(sed -n 's/^[0-9]*%: Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$out" |
		awk '{ c += $1; f += $2; e += $3; n++ } END { if (n) print c, f + e }')
	if [ -z "$summary" ]; then
		if [ "$rc" = 124 ]; then why="timed out after ${TEST_TIMEOUT}s"; else why="no Check summary (exit status $rc)"; fi
		echo "unit $name: FAILED: $why"
		sed 's/^/    /' "$out" | tail -n 30
		failed=$((failed + 1))
		note_failure "$name" "$why"
		return
	fi
	# shellcheck disable=SC2086 # two numbers, split on purpose
	set -- $summary
	checks=$1
	bad=$2
	good=$((checks - bad))
	passed=$((passed + good))
	failed=$((failed + bad))
	if [ "$bad" -gt 0 ]; then
		echo "unit $name: $good passed, $bad failed"
		# Check's failure lines: file:line:F|E:tcase:test:iter: message
		grep -E '^[^:]+:[0-9]+:[FE]:' "$out" | sed 's/^/    /'
		grep -E '^[^:]+:[0-9]+:[FE]:' "$out" | while IFS= read -r l; do
			echo "  FAIL $name: $l"
		done >>"$tmp/faillist"
	elif [ "$rc" != 0 ]; then
		# All checks passed but the runner itself failed (a leak report, a crash at exit).
		echo "unit $name: $good passed, but exit status $rc"
		sed 's/^/    /' "$out" | tail -n 30
		failed=$((failed + 1))
		note_failure "$name" "exit status $rc after all checks passed"
	else
		echo "unit $name: $good passed"
	fi
}

# run_blackbox SCRIPT
run_blackbox() {
	name=${1#"$TOP"/}
	out="$tmp/out"
	timeout -k 10 "$TEST_TIMEOUT" python3 "$1" >"$out" 2>&1
	rc=$?
	p=$(grep -c '^PASS ' "$out")
	f=$(grep -c '^FAIL ' "$out")
	s=$(grep -c '^SKIP ' "$out")
	passed=$((passed + p))
	failed=$((failed + f))
	grep -E '^(PASS|FAIL|SKIP) ' "$out" | sed 's/^/  /' | sed "s|^  |  [$name] |"
	grep '^FAIL ' "$out" | sed "s|^FAIL |  FAIL $name: |" >>"$tmp/faillist"
	if [ "$f" = 0 ] && { [ "$rc" != 0 ] || { [ "$p" = 0 ] && [ "$s" = 0 ]; }; }; then
		if [ "$rc" = 124 ]; then why="timed out after ${TEST_TIMEOUT}s"; else why="exit status $rc without a FAIL line"; fi
		failed=$((failed + 1))
		note_failure "$name" "$why"
		echo "  [$name] FAILED: $why"
	fi
	if [ "$rc" != 0 ] || [ "$f" != 0 ]; then
		# Everything else the script printed (daemon logs, tracebacks).
		grep -vE '^(PASS|FAIL|SKIP) ' "$out" | tail -n 80 | sed 's/^/    | /'
	fi
}

: >"$tmp/faillist"
for t in "$B"/tests/unit/*/test_*; do
	if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
	case "$t" in *.o | *.d) continue ;; esac
	case "$t" in *"$PATTERN"*) ;; *) continue ;; esac
	run_unit "$t"
done
for t in "$TOP"/tests/blackbox/test_*.py; do
	[ -f "$t" ] || continue
	case "$t" in *"$PATTERN"*) ;; *) continue ;; esac
	echo "blackbox ${t#"$TOP"/}"
	run_blackbox "$t"
done

# libFuzzer targets (tests/fuzz/fuzz_*.c), each one pass or fail, only when
# clang is installed (tests/fuzz/run.sh builds and runs them ~10 s each).
fuzz_match=
for t in "$TOP"/tests/fuzz/fuzz_*.c; do
	[ -f "$t" ] || continue
	case "$t" in *"$PATTERN"*) fuzz_match="$fuzz_match $(basename "$t" .c)" ;; esac
done
if [ -n "$fuzz_match" ] && { command -v clang >/dev/null 2>&1 || command -v clang-14 >/dev/null 2>&1; }; then
	for f in $fuzz_match; do
		echo "fuzz $f"
		out="$tmp/out"
		sh "$TOP/tests/fuzz/run.sh" "$f" >"$out" 2>&1
		rc=$?
		p=$(grep -c "^PASS $f\$" "$out")
		if [ "$p" -ge 1 ] && [ "$rc" = 0 ]; then
			passed=$((passed + 1))
			echo "  PASS $f"
		else
			failed=$((failed + 1))
			why=$(grep "^FAIL $f" "$out" | head -n 1)
			[ -n "$why" ] || why="tests/fuzz/run.sh exit status $rc"
			echo "  $why"
			sed 's/^/    | /' "$out" | tail -n 30
			note_failure "$f" "$why"
		fi
	done
fi

# Static analysis (tests/static/, `make analyze`): one pass or fail entry,
# only when cppcheck or clang-tidy is installed; ~95 s on 2 cores, most of
# it clang-tidy (TERN_NO_TIDY=1: cppcheck alone, ~5 s).
case static/analyze in *"$PATTERN"*) analyze=yes ;; *) analyze=no ;; esac
if [ "$analyze" = yes ] && { command -v cppcheck >/dev/null 2>&1 || command -v clang-tidy-14 >/dev/null 2>&1 ||
	command -v clang-tidy >/dev/null 2>&1; }; then
	echo "static analysis"
	out="$tmp/out"
	sh "$TOP/tests/static/cppcheck.sh" >"$out" 2>&1
	rc=$?
	if [ "${TERN_NO_TIDY:-}" != 1 ]; then
		sh "$TOP/tests/static/clang-tidy.sh" >>"$out" 2>&1 || rc=1
	fi
	grep -E '^(PASS|FAIL|SKIP) ' "$out" | sed 's/^/  /'
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		grep -vE '^(PASS|FAIL|SKIP) ' "$out" | tail -n 40 | sed 's/^/    | /'
		note_failure "static analysis" "$(grep '^FAIL ' "$out" | tr '\n' ' ')"
	fi
fi

if [ "$failed" -gt 0 ]; then
	echo
	echo "Failures:"
	cat "$tmp/faillist"
	[ -n "$failures" ] && printf '%s\n' "$failures" | sed '/^$/d'
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
