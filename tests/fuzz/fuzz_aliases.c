/*
 * fuzz_aliases — libFuzzer target for the aliases(5) parser.
 *
 * Feeds arbitrary bytes to aliases_parse and alias_parse_list (the
 * :include:/.forward syntax) and checks the invariants of the compiled
 * value: every target ends in '\n', none is empty, none holds a NUL or a
 * control byte.  Built by tests/fuzz/run.sh with common/*.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(const char *v, size_t n)
{
	if (n == 0 || v[n - 1] != '\n')
		abort();
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '\n') {
			if (i == start)
				abort(); /* empty target */
			start = i + 1;
		} else if (c < 32 || c == 127) {
			abort();
		}
	}
}

static int entry(void *ctx, const char *name, const char *value, size_t vlen, int line)
{
	(void)ctx;
	if (*name == '\0' || line < 1 || strlen(value) != vlen)
		abort();
	check_value(value, vlen);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct buf out;
	(void)aliases_parse((const char *)data, size, "fuzz", entry, NULL, err, sizeof(err));
	buf_init(&out, ALIAS_LIST_FILE_MAX);
	if (alias_parse_list((const char *)data, size, &out, err, sizeof(err)) == 0 && out.len)
		check_value(out.data, out.len);
	buf_free(&out);
	return 0;
}
