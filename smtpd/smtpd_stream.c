/*
 * smtpd_stream — buffered, deadline-bound connection I/O (see smtpd_stream.h).
 *
 * The fd backend keeps the descriptor non-blocking and waits with poll(), so
 * a peer that stops reading cannot hold a write forever and a signal can
 * neither abort nor extend a wait.  Errors: -1 with errno; the first write
 * error is remembered and later output is discarded.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "smtpd_stream.h"
#include "sock.h"

/* Wait until fd is ready for events or the deadline passes; 0, or -1 with errno. */
static int
fd_wait(int fd, short events, int timeout_ms, long long deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int wait = -1;
		int pr;

		if (timeout_ms >= 0) {
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

static ssize_t
fd_read(void *ctx, void *p, size_t n, int timeout_ms)
{
	struct smtpd_stream *st = ctx;
	long long deadline = clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		ssize_t r = read(st->fd, p, n);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (fd_wait(st->fd, POLLIN, timeout_ms, deadline) < 0)
			return -1;
	}
}

static ssize_t
fd_write(void *ctx, const void *p, size_t n, int timeout_ms)
{
	struct smtpd_stream *st = ctx;
	long long deadline = clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int is_sock = 1;

	for (;;) {
		ssize_t r;

		/* send() with MSG_NOSIGNAL: a vanished peer is EPIPE, not a signal. */
		r = is_sock ? send(st->fd, p, n, MSG_NOSIGNAL) : write(st->fd, p, n);
		if (r >= 0)
			return r;
		if (errno == ENOTSOCK && is_sock) {
			is_sock = 0;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (fd_wait(st->fd, POLLOUT, timeout_ms, deadline) < 0)
			return -1;
	}
}

void
stream_init(struct smtpd_stream *st, stream_read_fn rd, stream_write_fn wr, void *ctx, int timeout_ms)
{
	memset(st, 0, sizeof(*st));
	st->read = rd;
	st->write = wr;
	st->ctx = ctx;
	st->fd = -1;
	st->timeout_ms = timeout_ms;
	buf_init(&st->out, STREAM_OUT_MAX);
}

void
stream_init_fd(struct smtpd_stream *st, int fd, int timeout_ms)
{
	stream_init(st, fd_read, fd_write, NULL, timeout_ms);
	st->ctx = st;
	st->fd = fd;
	if (fd_set_nonblock(fd, 1) < 0)
		log_warning("cannot make the connection non-blocking: %s", strerror(errno));
}

void
stream_set_io(struct smtpd_stream *st, stream_read_fn rd, stream_write_fn wr, void *ctx)
{
	if (st->out.len > 0)
		log_panic("stream_set_io with %zu unflushed bytes", st->out.len);
	st->read = rd;
	st->write = wr;
	st->ctx = ctx;
}

void
stream_free(struct smtpd_stream *st)
{
	buf_free(&st->out);
}

int
stream_failed(const struct smtpd_stream *st)
{
	return st->err != 0;
}

int
stream_flush(struct smtpd_stream *st)
{
	size_t done = 0;

	if (st->err) {
		buf_reset(&st->out);
		errno = st->err;
		return -1;
	}
	while (done < st->out.len) {
		ssize_t w = st->write(st->ctx, st->out.data + done, st->out.len - done, st->timeout_ms);

		if (w <= 0) {
			st->err = w < 0 && errno != 0 ? errno : EIO;
			buf_reset(&st->out);
			errno = st->err;
			return -1;
		}
		done += (size_t)w;
	}
	buf_reset(&st->out);
	return 0;
}

int
stream_put(struct smtpd_stream *st, const void *p, size_t n)
{
	const char *s = p;

	if (st->err)
		return -1;
	while (n > 0) {
		size_t room = st->out.max - st->out.len;
		size_t take = n < room ? n : room;

		if (take == 0) {
			if (stream_flush(st) < 0)
				return -1;
			continue;
		}
		if (buf_append(&st->out, s, take) < 0)
			log_panic("stream_put: output buffer bound");
		s += take;
		n -= take;
	}
	return 0;
}

int
stream_printf(struct smtpd_stream *st, const char *fmt, ...)
{
	char tmp[STREAM_OUT_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		log_panic("stream_printf: reply longer than %zu bytes", sizeof(tmp));
	return stream_put(st, tmp, (size_t)n);
}

int
stream_input_within(struct smtpd_stream *st, int ms)
{
	long long deadline = clock_ms() + (ms > 0 ? ms : 0);
	char c;
	ssize_t r;

	/* Inside TLS (465) the socket's bytes are records, not commands. */
	if (st->fd < 0 || st->tls != NULL)
		return 0;
	if (fd_wait(st->fd, POLLIN, ms > 0 ? ms : 0, deadline) < 0)
		return 0;
	/* Readable: bytes, or only the end of the connection (not a talker). */
	r = recv(st->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r > 0;
}

void
stream_record_start(struct smtpd_stream *st, long long min_rate)
{
	st->rec_start_ms = clock_ms();
	st->rec_bytes = 0;
	st->rec_rate = min_rate > 0 ? min_rate : 0;
}

void
stream_record_end(struct smtpd_stream *st)
{
	st->rec_start_ms = 0;
}

/* What is left of the record deadline in ms (0 once it has passed), or -1
 * when there is none.  Never negative otherwise: a deadline overrun found
 * late (a busy machine) must not read as "no deadline", or a client
 * trickling a byte a second would never be cut. */
static long long
record_left(const struct smtpd_stream *st)
{
	long long allowed, left;

	if (st->rec_start_ms == 0 || st->timeout_ms < 0)
		return -1;
	allowed = st->timeout_ms;
	if (st->rec_rate > 0) {
		unsigned long long extra = st->rec_bytes / (unsigned long long)st->rec_rate;

		allowed += extra > 86400ULL ? 86400LL * 1000 : (long long)extra * 1000;
	}
	left = st->rec_start_ms + allowed - clock_ms();
	return left > 0 ? left : 0;
}

ssize_t
stream_lr_read(void *ctx, void *p, size_t n)
{
	struct smtpd_stream *st = ctx;
	int timeout = st->timeout_ms;
	long long left;
	ssize_t r;

	/* About to wait for the client: everything it may be waiting for goes out now. */
	if (st->out.len > 0 && stream_flush(st) < 0)
		return -1;
	if ((left = record_left(st)) >= 0) {
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (left < timeout)
			timeout = (int)left;
	}
	r = st->read(st->ctx, p, n, timeout);
	if (r > 0)
		st->rec_bytes += (unsigned long long)r;
	return r;
}
