/*
 * fuzz_addr — libFuzzer target for addr_parse_path / addr_parse_mailbox.
 *
 * The first input byte picks the parser flags, the rest is the path.  On
 * success the parsed address must keep the promises of addr.h: no control
 * character, local part, domain and path within their RFC 5321 limits, and
 * the end pointer inside the input.  A broken promise traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct addr *a)
{
	const char *p;

	for (p = a->mailbox; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			__builtin_trap();
	if (strlen(a->domain) > ADDR_DOMAIN_MAX || strlen(a->mailbox) + 2 > ADDR_PATH_MAX)
		__builtin_trap();
	if (a->is_null && a->mailbox[0] != '\0')
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr a;
	const char *end;
	char *s;
	int flags;

	if (size == 0)
		return 0;
	flags = data[0] & (ADDR_ALLOW_NULL | ADDR_UTF8 | ADDR_NO_BRACKETS | ADDR_ALLOW_NO_DOMAIN);
	s = malloc(size);
	if (s == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (addr_parse_path(s, flags, &a, &end) == ADDR_OK) {
		check(&a);
		if (end < s || end > s + strlen(s))
			__builtin_trap();
	}
	if (addr_parse_mailbox(s, flags, &a) == ADDR_OK)
		check(&a);
	free(s);
	return 0;
}
