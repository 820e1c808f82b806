/*
 * fuzz_conf — libFuzzer target for the tern.conf parser (conf_load_string,
 * then conf_finish and conf_override on the input's first line).
 *
 * Promises checked: no crash, no leak, bounded time; a rejected file leaves
 * the defaults in cf (conf.h), so conf_finish on them must succeed; an
 * error message is always NUL-terminated within its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	char *text;
	char *nl;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(err, 'x', sizeof(err));
	if (conf_load_string(text, "fuzz.conf", err, sizeof(err)) == 0) {
		(void)conf_finish(err, sizeof(err));
	} else {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			__builtin_trap();
		/* On error cf holds the defaults: they must finish cleanly. */
		if (conf_finish(err, sizeof(err)) != 0)
			__builtin_trap();
	}
	/* The first line as a command-line override. */
	nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	(void)conf_override(text, err, sizeof(err));
	free(text);
	return 0;
}
