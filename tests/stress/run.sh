#!/bin/sh
# tests/stress/run.sh — the long reliability runs (`make stress`):
#   the kill -9 storm with STORM_MESSAGES messages (default 3000), and the
#   fault tests including the known-failure random-fault run (FAULT_STRESS=1,
#   FAULT_RANDOM_MESSAGES, default 200).  Ends with "N passed, N failed".
# Usage: B=build sh tests/stress/run.sh
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
export B
STORM_MESSAGES=${STORM_MESSAGES:-3000}
FAULT_RANDOM_MESSAGES=${FAULT_RANDOM_MESSAGES:-200}
export STORM_MESSAGES FAULT_RANDOM_MESSAGES
passed=0
failed=0
out=$(mktemp "${TMPDIR:-/tmp}/tern-stress.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT
for t in tests/blackbox/test_storm.py tests/blackbox/test_faults.py; do
	echo "stress $t"
	FAULT_STRESS=1 timeout -k 10 3600 python3 "$t" >"$out" 2>&1
	rc=$?
	grep -E '^(PASS|FAIL|SKIP|INFO) ' "$out" | sed 's/^/  /'
	p=$(grep -c '^PASS ' "$out")
	f=$(grep -c '^FAIL ' "$out")
	if [ "$f" = 0 ] && [ "$rc" != 0 ]; then f=1; echo "  FAIL $t: exit status $rc"; fi
	[ "$f" != 0 ] && grep -vE '^(PASS|FAIL|SKIP|INFO) ' "$out" | tail -n 60 | sed 's/^/    | /'
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
