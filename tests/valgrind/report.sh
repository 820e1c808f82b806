#!/bin/sh
# tests/valgrind/report.sh — read the memcheck logs of a `make valgrind` run
# (one vg.PID.log per daemon process, written by the wrapper scripts of
# tests/blackbox/tern_harness.py) and fail on any memcheck error.
#
#   errors:   a log whose "ERROR SUMMARY: N errors" has N > 0 — invalid
#             reads/writes, uses of uninitialised values, bad frees, overlapping
#             copies, fd misuse, and *definitely lost* blocks (the wrappers run
#             --errors-for-leak-kinds=definite)
#   ignored:  "still reachable" and "possibly lost" blocks: a daemon that ends
#             on SIGTERM or max_use exits with its configuration, tables and
#             buffers still referenced, and a child of a fork (local's
#             per-delivery children, smtpd's) _exits with its parent's heap;
#             neither is a leak that grows
#   unfinished: a log without an ERROR SUMMARY line (a process killed with
#             SIGKILL by a test, or the exec of a program the wrapper does not
#             follow): counted and listed, not a failure
#
# Prints one line "valgrind: N processes, N with errors (N errors), N unfinished"
# and, per failing log, its command line and first error blocks.
# Usage: sh tests/valgrind/report.sh DIR      exit 0 clean, 1 errors, 2 no logs

dir=${1:?usage: report.sh DIR}
n=0
bad=0
errors=0
unfinished=0
badlist=
for f in "$dir"/vg.*.log; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	# "==PID== ERROR SUMMARY: 3 errors from 2 contexts ..." (the last one counts:
	# a forked child's log repeats its parent's header but has its own summary)
	e=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -n 1)
	if [ -z "$e" ]; then
		unfinished=$((unfinished + 1))
		continue
	fi
	if [ "$e" -gt 0 ]; then
		bad=$((bad + 1))
		errors=$((errors + e))
		badlist="$badlist $f"
	fi
done
if [ "$n" = 0 ]; then
	echo "valgrind: no logs in $dir (was TERN_VALGRIND set?)"
	exit 2
fi
for f in $badlist; do
	echo "--- $f"
	grep -m 1 'Command:' "$f"
	# the error blocks: from the first "Invalid"/"uninitialised"/"definitely
	# lost" line, bounded
	sed -n '/== \(Invalid\|Conditional\|Use of uninit\|Syscall param\|Mismatched\|Source and dest\|Argument\|[0-9,]* bytes in [0-9,]* blocks are definitely\)/,/^==[0-9]*== $/p' "$f" | head -n 80
done
echo "valgrind: $n processes, $bad with errors ($errors errors), $unfinished unfinished"
[ "$bad" = 0 ]
