/*
 * lineread — the bounded line reader behind all untrusted input.
 *
 * Public: lr_init, lr_init_fd, lr_free, lr_set_max, lr_set_flags,
 * lr_getline, lr_read, lr_pending, lr_discard_pending.
 *
 * The reader owns one buffer of max + LR_CHUNK bytes, allocated at init and
 * never grown: an overlong line is either discarded up to its LF
 * (LR_TOOLONG) or handed out in pieces (LR_SPLIT), so memory stays flat
 * whatever the peer sends.  Errors: read failures come back as LR_ERROR /
 * -1 with errno set (ETIMEDOUT for the fd reader's poll timeout); misuse by
 * the caller (a line buffer smaller than the reader's max, raising max past
 * the init value) is a bug and panics.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "lineread.h"
#include "log.h"
#include "xalloc.h"

#define LR_CHUNK 4096

void lr_init(struct linereader *lr, lr_read_fn fn, void *ctx, size_t max, int flags)
{
	/* The buffer must hold a full line, its CR and LF, and still leave room to read. */
	/* max 0 would make LR_SPLIT hand out empty pieces forever. */
	if (max == 0 || max > (size_t)-1 / 2)
		log_panic("lr_init: absurd maximum line length %zu", max);
	memset(lr, 0, sizeof(*lr));
	lr->read = fn;
	lr->ctx = ctx;
	lr->max = max;
	lr->flags = flags;
	lr->bufsize = max + LR_CHUNK;
	lr->buf = xmalloc(lr->bufsize);
	lr->fd = -1;
	lr->timeout_ms = -1;
}

/* Wait until fd is readable or the reader's deadline passes; 0, or -1 with
 * errno (ETIMEDOUT).  A signal neither aborts the wait nor extends it. */
static int lr_fd_wait(const struct linereader *lr, long long deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = lr->fd, .events = POLLIN };
		int wait = -1, pr;

		if (lr->timeout_ms >= 0) {
			long long left = deadline - clock_ms();

			wait = left > 0 ? (int)left : 0;
		}
		pr = poll(&pfd, 1, wait);
		if (pr > 0)
			return 0;
		if (pr == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

/* read(2) with a deadline.  Without one there is nothing to wait for
 * before the read (a queue file is always readable): poll only after
 * EAGAIN. */
static ssize_t lr_fd_read(void *ctx, void *p, size_t n)
{
	struct linereader *lr = ctx;
	long long deadline = lr->timeout_ms >= 0 ? clock_ms() + lr->timeout_ms : 0;
	int wait_first = lr->timeout_ms >= 0;

	for (;;) {
		ssize_t r;

		if (wait_first && lr_fd_wait(lr, deadline) < 0)
			return -1;
		wait_first = 1;
		r = read(lr->fd, p, n);
		if (r >= 0)
			return r;
		/* EAGAIN: a spurious wakeup on a non-blocking fd; wait again. */
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
	}
}

void lr_init_fd(struct linereader *lr, int fd, size_t max, int flags, int timeout_ms)
{
	lr_init(lr, lr_fd_read, NULL, max, flags);
	lr->ctx = lr;
	lr->fd = fd;
	lr->timeout_ms = timeout_ms;
}

void lr_free(struct linereader *lr)
{
	free(lr->buf);
	lr->buf = NULL;
	lr->bufsize = 0;
	lr->start = lr->end = 0;
}

void lr_set_max(struct linereader *lr, size_t max)
{
	if (max == 0 || max + LR_CHUNK > lr->bufsize)
		log_panic("lr_set_max: %zu exceeds the reader's initial maximum", max);
	lr->max = max;
}

void lr_set_flags(struct linereader *lr, int flags)
{
	lr->flags = flags;
}

size_t lr_pending(const struct linereader *lr)
{
	return lr->end - lr->start;
}

void lr_discard_pending(struct linereader *lr)
{
	lr->start = lr->end = 0;
}

/*
 * Read more bytes behind lr->end.  The buffered bytes are moved to the front
 * only when the tail room runs short, so a pipelined burst of short lines is
 * not memmoved once per line.  Returns as the read callback; 0 sets eof.
 */
static ssize_t lr_fill(struct linereader *lr)
{
	ssize_t r;

	if (lr->start == lr->end)
		lr->start = lr->end = 0;
	else if (lr->bufsize - lr->end < LR_CHUNK / 2 && lr->start > 0) {
		memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
		lr->end -= lr->start;
		lr->start = 0;
	}
	if (lr->end == lr->bufsize)
		log_panic("lr_fill: no room in a reader buffer that should always have some");
	r = lr->read(lr->ctx, lr->buf + lr->end, lr->bufsize - lr->end);
	if (r > 0) {
		if ((size_t)r > lr->bufsize - lr->end)
			log_panic("lr_fill: read callback returned more than asked");
		lr->end += (size_t)r;
	} else if (r == 0) {
		lr->eof = 1;
	}
	return r;
}

/* Hand out n buffered bytes as the line, then consume skip bytes. */
static void lr_emit(struct linereader *lr, struct buf *line, size_t n, size_t skip)
{
	buf_reset(line);
	if (buf_append(line, lr->buf + lr->start, n) < 0)
		log_panic("lr_getline: line buffer max %zu below reader max %zu", line->max, lr->max);
	lr->start += skip;
}

/*
 * Non-split overlong line: drop it through its LF without keeping it.  Only
 * the tail after the LF stays buffered, so a 10 MB line costs no memory.
 */
static enum lr_result lr_skip_line(struct linereader *lr)
{
	for (;;) {
		char *lf = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);

		if (lf != NULL) {
			lr->start = (size_t)(lf - lr->buf) + 1;
			return LR_TOOLONG;
		}
		lr->start = lr->end = 0;
		if (lr->eof)
			return LR_TOOLONG;
		if (lr_fill(lr) < 0)
			return LR_ERROR;
	}
}

/* The line before the LF is len bytes: strip a CR, then return it, split it or report it overlong. */
static enum lr_result lr_complete(struct linereader *lr, struct buf *line, size_t len, enum lr_ending *ending)
{
	size_t content = len;

	*ending = LR_END_LF;
	if (content > 0 && lr->buf[lr->start + content - 1] == '\r') {
		content--;
		*ending = LR_END_CRLF;
	}
	if (content <= lr->max) {
		lr_emit(lr, line, content, len + 1);
		return LR_LINE;
	}
	if (lr->flags & LR_SPLIT) {
		*ending = LR_END_NONE;
		lr_emit(lr, line, lr->max, lr->max);
		return LR_LINE;
	}
	lr->start += len + 1;
	return LR_TOOLONG;
}

enum lr_result lr_getline(struct linereader *lr, struct buf *line, enum lr_ending *ending)
{
	size_t scanned = 0; /* bytes after start already known to hold no LF */
	enum lr_ending dummy;

	if (ending == NULL)
		ending = &dummy;
	*ending = LR_END_NONE;
	for (;;) {
		size_t avail = lr->end - lr->start;
		char *lf = memchr(lr->buf + lr->start + scanned, '\n', avail - scanned);

		if (lf != NULL)
			return lr_complete(lr, line, (size_t)(lf - (lr->buf + lr->start)), ending);
		scanned = avail;
		/*
		 * Without an LF, max + 1 bytes can still be a valid line only when
		 * the last one is the CR of a CRLF still to come.
		 */
		if (avail > lr->max + 1 || (avail == lr->max + 1 && lr->buf[lr->end - 1] != '\r') ||
		    (lr->eof && avail > lr->max)) {
			if (!(lr->flags & LR_SPLIT))
				return lr_skip_line(lr);
			*ending = LR_END_NONE;
			lr_emit(lr, line, lr->max, lr->max);
			return LR_LINE;
		}
		if (lr->eof) {
			if (avail == 0)
				return LR_EOF;
			*ending = LR_END_NONE;
			lr_emit(lr, line, avail, avail);
			return LR_LINE;
		}
		if (lr_fill(lr) < 0)
			return LR_ERROR;
	}
}

ssize_t lr_read(struct linereader *lr, void *p, size_t n)
{
	size_t avail = lr->end - lr->start;
	ssize_t r;

	if (n == 0)
		return 0;
	if (avail > 0) {
		if (n > avail)
			n = avail;
		memcpy(p, lr->buf + lr->start, n);
		lr->start += n;
		return (ssize_t)n;
	}
	if (lr->eof)
		return 0;
	if (n > (size_t)SSIZE_MAX)
		n = (size_t)SSIZE_MAX;
	r = lr->read(lr->ctx, p, n);
	if (r == 0)
		lr->eof = 1;
	return r;
}
