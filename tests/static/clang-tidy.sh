#!/bin/sh
# tests/static/clang-tidy.sh — clang-tidy (14) with the checked-in .clang-tidy
# over tern's C sources; prints every warning and "PASS clang-tidy" or
# "FAIL clang-tidy: N warnings"; exit 1 on any warning (issue 11, item 4).
#
# The compile flags are the Makefile's own: `make -n -B` (a dry run into a
# scratch build directory, nothing is built) gives every compiler command,
# turned into $B/analyze/compile_commands.json (-MMD/-MP/-o dropped).
# Runs nproc files at a time: ~85 s on 2 cores for the whole tree.
# Usage: sh tests/static/clang-tidy.sh [FILE.c...]   (default: every source)
cd "$(dirname "$0")/../.." || exit 1
TIDY=
for t in clang-tidy-14 clang-tidy; do
	if command -v "$t" >/dev/null 2>&1; then TIDY=$t; break; fi
done
if [ -z "$TIDY" ]; then
	echo "SKIP clang-tidy: clang-tidy is not installed"
	exit 0
fi
B=${B:-build}
db="$B/analyze"
mkdir -p "$db" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-tidy.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
make --no-print-directory -n -B B="$tmp/nobuild" all 2>/dev/null | grep -- ' -c -o ' >"$tmp/cmds"
python3 - "$tmp/cmds" "$db/compile_commands.json" "$(pwd)" <<'PY' || exit 1
import json, shlex, sys
out = []
for line in open(sys.argv[1]):
    argv, skip = [], False
    for a in shlex.split(line):
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        elif a not in ("-MMD", "-MP"):
            argv.append(a)
    out.append({"directory": sys.argv[3], "file": argv[-1], "arguments": argv})
if not out:
    sys.exit("no compiler commands from make -n")
json.dump(out, open(sys.argv[2], "w"), indent=1)
PY
if [ $# -gt 0 ]; then
	files="$*"
else
	. tests/static/sources.sh
	files=$SOURCES
fi
jobs=$(nproc 2>/dev/null || echo 2)
# shellcheck disable=SC2086 # paths without blanks
printf '%s\n' $files | xargs -P "$jobs" -n 4 "$TIDY" -p "$db" --quiet >"$tmp/out" 2>"$tmp/err"
rc=$?
grep -E '(warning|error): ' "$tmp/out" "$tmp/err" | sed 's/^[^:]*://' | sort -u >"$tmp/w"
cat "$tmp/w"
n=$(wc -l <"$tmp/w")
if [ "$n" = 0 ] && [ "$rc" = 0 ]; then
	echo "PASS clang-tidy"
	exit 0
fi
[ "$n" = 0 ] && tail -n 20 "$tmp/err"
echo "FAIL clang-tidy: $n warnings (exit status $rc)"
exit 1
