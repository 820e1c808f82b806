/*
 * buf — the bounded, length-counted, always NUL-terminated string type.
 *
 * Public: buf_init, buf_free, buf_reset, buf_truncate, buf_append, buf_puts,
 * buf_putc, buf_printf, buf_vprintf, buf_set, buf_consume, str_copy.
 *
 * Errors: an append that would take len past max returns -1 and leaves the
 * buffer exactly as it was.  Memory comes from xalloc, so allocation failure
 * is fatal rather than an error to handle.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "xalloc.h"

#define BUF_INITIAL 64

void buf_init(struct buf *b, size_t max)
{
	/* max + 1 bytes must be allocatable: keep the NUL slot representable. */
	if (max >= SIZE_MAX / 2)
		max = SIZE_MAX / 2 - 1;
	b->max = max;
	b->len = 0;
	b->cap = (max < BUF_INITIAL ? max : BUF_INITIAL) + 1;
	b->data = xmalloc(b->cap);
	b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->data[0] = '\0';
}

void buf_truncate(struct buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

/* Make room for n more bytes plus the NUL; -1 when len + n would pass max. */
static int buf_reserve(struct buf *b, size_t n)
{
	size_t need, cap;

	if (n > b->max - b->len)
		return -1;
	need = b->len + n + 1; /* cannot overflow: max < SIZE_MAX / 2 */
	if (need <= b->cap)
		return 0;
	cap = b->cap;
	while (cap < need)
		cap *= 2; /* cap < SIZE_MAX / 2 here, so doubling cannot wrap */
	if (cap > b->max + 1)
		cap = b->max + 1;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, int c)
{
	char ch = (char)c;

	return buf_append(b, &ch, 1);
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

/*
 * Format into the spare room first (the common case needs no second pass);
 * when it does not fit, grow to the exact size and format again.  Bytes past
 * len are not part of the contents, so scribbling there and then restoring
 * data[len] leaves the buffer unchanged on failure.
 */
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	size_t room = b->cap - b->len;
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(b->data + b->len, room, fmt, ap2);
	va_end(ap2);
	if (n < 0 || (size_t)n > b->max - b->len) {
		b->data[b->len] = '\0';
		return -1;
	}
	if ((size_t)n >= room) {
		if (buf_reserve(b, (size_t)n) < 0) {
			b->data[b->len] = '\0';
			return -1;
		}
		va_copy(ap2, ap);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
		va_end(ap2);
		if (n < 0 || (size_t)n >= b->cap - b->len) {
			/* The arguments changed meaning between passes: impossible for valid callers. */
			b->data[b->len] = '\0';
			return -1;
		}
	}
	b->len += (size_t)n;
	return 0;
}

int buf_set(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	if (n > b->max)
		return -1;
	buf_reset(b);
	return buf_append(b, s, n);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

int str_copy(char *dst, size_t dstsize, const char *src)
{
	size_t n = strlen(src);

	if (dstsize == 0)
		return -1;
	if (n >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}
