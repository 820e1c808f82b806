#!/bin/sh
# tests/fuzz/run.sh — build and briefly run every libFuzzer target.
#
# Each tests/fuzz/fuzz_NAME.c is compiled with clang
# (-fsanitize=fuzzer,address,undefined) together with common/*.c and the
# extra sources named on a line of the target of the form
#     // fuzz-sources: smtpd/smtpd_cmd.c send/send_dns.c
# into $B/fuzz/fuzz_NAME (B defaults to build), then run for
# FUZZ_TIME seconds (default 10: the short run of make check; make fuzz runs longer) over its seed corpus tests/fuzz/corpus/NAME/
# (new inputs go to a scratch copy, so the checked-in corpus never changes).
# Prints "PASS fuzz_NAME" or "FAIL fuzz_NAME: reason" per target and exits
# non-zero when any failed; exits 0 with "SKIP" lines when clang is missing.
#
# Usage: sh tests/fuzz/run.sh [PATTERN]    (only targets whose name contains PATTERN)

cd "$(dirname "$0")/../.." || exit 1
TOP=$(pwd)
B=${B:-build}
case "$B" in /*) ;; *) B="$TOP/$B" ;; esac
FUZZ_TIME=${FUZZ_TIME:-10}
PATTERN=${1:-}
CLANG=${CLANG:-}
if [ -z "$CLANG" ]; then
	for c in clang clang-16 clang-15 clang-14; do
		if command -v "$c" >/dev/null 2>&1; then CLANG=$c; break; fi
	done
fi

out="$B/fuzz"
mkdir -p "$out" || exit 1
failed=0
for src in "$TOP"/tests/fuzz/fuzz_*.c; do
	[ -f "$src" ] || continue
	base=$(basename "$src" .c)
	name=${base#fuzz_}
	case "$base" in *"$PATTERN"*) ;; *) continue ;; esac
	if [ -z "$CLANG" ]; then
		echo "SKIP $base: clang not installed"
		continue
	fi
	# The target's own list of extra sources (paths relative to the top).
	extra=$(sed -n 's|^// fuzz-sources:||p' "$src" | tr '\n' ' ')
	srcs=
	for e in $extra; do srcs="$srcs $TOP/$e"; done
	log="$out/$base.log"
	# shellcheck disable=SC2086 # word lists on purpose
	if ! "$CLANG" -g -O1 -std=c11 -D_GNU_SOURCE -DTERN_FUZZ \
		-DTERN_LIBEXECDIR='"/nonexistent"' -DTERN_SYSCONFDIR='"/nonexistent"' \
		-DTERN_QUEUEDIR='"/nonexistent"' \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-I"$TOP/common" -o "$out/$base" "$src" "$TOP"/common/*.c $srcs -lcdb -lresolv -lssl -lcrypto -lcrypt >"$log" 2>&1; then
		echo "FAIL $base: does not build (see $log)"
		tail -n 20 "$log" | sed 's/^/    | /'
		failed=$((failed + 1))
		continue
	fi
	work="$out/corpus-$name"
	rm -rf "$work"
	mkdir -p "$work"
	if [ -d "$TOP/tests/fuzz/corpus/$name" ]; then
		cp "$TOP/tests/fuzz/corpus/$name"/* "$work"/ 2>/dev/null
	fi
	# -rss_limit_mb: memory must stay flat; -timeout: no input may hang.
	if (cd "$out" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		timeout -k 5 $((FUZZ_TIME + 60)) "./$base" -max_total_time="$FUZZ_TIME" -timeout=5 \
		-rss_limit_mb=1024 -max_len=4096 -print_final_stats=0 "$work" >>"$log" 2>&1); then
		echo "PASS $base"
	else
		echo "FAIL $base: crashed or timed out (see $log)"
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 10 | sed 's/^/    | /'
		failed=$((failed + 1))
	fi
done
[ "$failed" -eq 0 ]
