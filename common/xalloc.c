/*
 * xalloc — allocation wrappers that never return NULL.
 *
 * Public: xmalloc, xcalloc, xrealloc, xreallocarray, xstrdup, xstrndup.
 * Errors: out of memory or a size overflow ends the process via log_fatal,
 * so no caller carries an untested NULL path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

void *xmalloc(size_t n)
{
	/* malloc(0) may legally return NULL; ask for one byte so NULL always means OOM. */
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		log_fatal("out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		log_fatal("allocation overflow (%zu * %zu)", nmemb, size);
	p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		log_fatal("out of memory (%zu * %zu bytes)", nmemb, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	/* realloc(p, 0) may free p and return NULL; never let that happen. */
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		log_fatal("out of memory (%zu bytes)", n);
	return q;
}

void *xreallocarray(void *p, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		log_fatal("allocation overflow (%zu * %zu)", nmemb, size);
	return xrealloc(p, nmemb * size);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p;

	if (len == SIZE_MAX)
		log_fatal("allocation overflow (string)");
	p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}
