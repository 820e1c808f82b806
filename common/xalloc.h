/*
 * xalloc — allocation that never returns NULL.
 *
 * Every x*alloc function either returns usable memory or ends the process
 * through log_fatal("out of memory"): callers never test for NULL.  Sizes
 * are overflow-checked (xreallocarray) before they reach the allocator.
 */
#ifndef TERN_XALLOC_H
#define TERN_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* realloc of nmemb * size bytes; fatal when the product overflows. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
/* Copy of the first n bytes of s, NUL-terminated. */
char *xstrndup(const char *s, size_t n);

#endif
