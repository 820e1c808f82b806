/*
 * buf — tern's one string type.
 *
 * A length-counted byte buffer that is always NUL-terminated (data[len] ==
 * 0, even when empty: data is never NULL after buf_init) and that never grows
 * past a hard maximum chosen by its owner.  Every append either succeeds
 * whole or fails with -1 and leaves the buffer unchanged, so a caller can
 * report "too long" instead of silently truncating.  Growth is
 * overflow-checked; memory comes from xalloc (never NULL).
 *
 * str_copy is the only way to fill a fixed-size char array from a string:
 * it reports truncation instead of hiding it.
 */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data; /* owned; data[len] == '\0' */
	size_t len; /* bytes in use, not counting the NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* hard limit for len */
};

/* Initialise an empty buffer that will never hold more than max bytes. */
void buf_init(struct buf *b, size_t max);
/* Release the memory; the buffer must be buf_init'ed again before reuse. */
void buf_free(struct buf *b);
/* Empty the buffer, keeping its memory and its maximum. */
void buf_reset(struct buf *b);
/* Shorten to len bytes (no-op when len >= b->len). */
void buf_truncate(struct buf *b, size_t len);

/* Append n bytes (may contain NULs). 0 on success, -1 when max would be exceeded. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, int c);
/* Formatted append; -1 (buffer unchanged) when the result would exceed max. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Replace the contents with s; -1 (buffer unchanged) when too long. */
int buf_set(struct buf *b, const char *s);
/* Drop the first n bytes (n > len empties the buffer). */
void buf_consume(struct buf *b, size_t n);

/*
 * Copy the NUL-terminated src into dst[dstsize].  Returns 0 on success, -1
 * when src does not fit (dst then holds a truncated, NUL-terminated copy,
 * which the caller must treat as an error).
 */
int str_copy(char *dst, size_t dstsize, const char *src);

#endif
