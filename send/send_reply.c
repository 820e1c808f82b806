/*
 * send_reply — the client side of an SMTP connection: timed non-blocking
 * I/O, buffered output for pipelining, and a strict reply reader.
 *
 * Every reply is read through the bounded line reader (SMTP_LINE_MAX bytes
 * per line, SMTP_REPLY_LINES lines per reply) against one deadline of
 * timeout_ms for the whole reply, so a peer that trickles bytes cannot hold
 * the agent longer than that.  A reply is malformed when a line is
 * overlong, holds a NUL, does not start with a code 200..559 followed by
 * ' ', '-' or the end of the line, or when the lines of one reply disagree
 * on the code.  A line cut off by the end of input is a lost connection.
 * Lines ending in a bare LF are accepted (as Postfix does); a CR inside a
 * line is text and is sanitised before it reaches a log or a DSN.
 *
 * Writes go through send(MSG_NOSIGNAL) with poll, each flush bounded by
 * timeout_ms.  Both directions go through the io_read/io_write callbacks,
 * so a TLS layer replaces the transport without touching the protocol.
 * With c->trace set (debug_peer_list) every command line sent through
 * smtp_conn_printf and every reply line read is logged.
 *
 * Public: smtp_conn_*, smtp_reply_*, smtp_read_reply.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "send.h"

#define OUT_MAX (2 * SEND_CHUNK + 1024)

static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - clock_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return 0;
	}
}

static ssize_t plain_read(struct smtp_conn *c, void *p, size_t n)
{
	return read(c->fd, p, n);
}

static ssize_t plain_write(struct smtp_conn *c, void *p, size_t n)
{
	return send(c->fd, p, n, MSG_NOSIGNAL);
}

static ssize_t conn_read(void *ctx, void *p, size_t n)
{
	struct smtp_conn *c = ctx;
	/* Read first, wait only when nothing is there: a TLS layer may hold
	 * decrypted bytes the socket no longer shows (io_events says what
	 * the TLS layer waits for; 0 for plain sockets). */
	for (;;) {
		c->io_events = 0;
		ssize_t r = c->io_read(c, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c->fd, c->io_events ? c->io_events : POLLIN, c->deadline_ms) < 0)
				return -1;
			continue;
		}
		return r;
	}
}

void smtp_conn_init(struct smtp_conn *c, int fd, int timeout_ms)
{
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	c->deadline_ms = clock_ms() + timeout_ms;
	lr_init(&c->lr, conn_read, c, SMTP_LINE_MAX, 0);
	buf_init(&c->out, OUT_MAX);
	c->io_read = plain_read;
	c->io_write = plain_write;
	c->io_ctx = NULL;
	c->io_events = 0;
	c->trace = NULL;
}

void smtp_conn_free(struct smtp_conn *c)
{
	lr_free(&c->lr);
	buf_free(&c->out);
}

int smtp_conn_flush(struct smtp_conn *c)
{
	size_t off = 0;
	long long deadline = clock_ms() + c->timeout_ms;
	while (off < c->out.len) {
		c->io_events = 0;
		ssize_t w = c->io_write(c, c->out.data + off, c->out.len - off);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c->fd, c->io_events ? c->io_events : POLLOUT, deadline) < 0)
				return -1;
			continue;
		}
		if (w == 0)
			errno = EPIPE;
		return -1;
	}
	buf_reset(&c->out);
	return 0;
}

int smtp_conn_put(struct smtp_conn *c, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		size_t room = c->out.max - c->out.len;
		if (room == 0) {
			if (smtp_conn_flush(c) < 0)
				return -1;
			continue;
		}
		size_t k = n < room ? n : room;
		if (buf_append(&c->out, s, k) < 0) {
			errno = ENOBUFS; /* cannot happen: k fits */
			return -1;
		}
		s += k;
		n -= k;
	}
	return 0;
}

int smtp_conn_printf(struct smtp_conn *c, const char *fmt, ...)
{
	char line[2 * ADDR_SIZE + 128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		errno = EOVERFLOW;
		return -1;
	}
	if (c->trace) {
		int shown = n >= 2 ? n - 2 : n; /* without the CRLF */
		log_info("> %s: %.*s", c->trace, shown, line);
	}
	return smtp_conn_put(c, line, (size_t)n);
}

void smtp_reply_init(struct smtp_reply *rep)
{
	rep->code = 0;
	rep->dsn[0] = '\0';
	rep->nlines = 0;
	buf_init(&rep->lines, (size_t)SMTP_REPLY_LINES * (SMTP_LINE_MAX + 1));
}

void smtp_reply_free(struct smtp_reply *rep)
{
	buf_free(&rep->lines);
}

static int is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* "X.Y.Z" at the start of text, X the reply's class, Y and Z 1-3 digits. */
static void parse_dsn(const char *t, size_t n, int code, char *dsn, size_t dsnsize)
{
	size_t i = 0, k;
	dsn[0] = '\0';
	if (n < 5 || t[0] != (char)('0' + code / 100) || t[1] != '.')
		return;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (k = 0; i < n && is_digit(t[i]) && k < 4; i++, k++)
			;
		if (k == 0 || k > 3)
			return;
		if (part == 0) {
			if (i >= n || t[i] != '.')
				return;
			i++;
		}
	}
	if (i < n && t[i] != ' ')
		return;
	if (i < dsnsize) {
		memcpy(dsn, t, i);
		dsn[i] = '\0';
	}
}

static enum smtp_read_result read_error(void)
{
	if (errno == ETIMEDOUT)
		return SMTP_REPLY_TIMEOUT;
	if (errno == ECONNRESET || errno == EPIPE)
		return SMTP_REPLY_LOST;
	return SMTP_REPLY_ERROR;
}

enum smtp_read_result smtp_read_reply(struct smtp_conn *c, struct smtp_reply *rep)
{
	struct buf line;
	enum lr_ending ending;
	enum smtp_read_result ret = SMTP_REPLY_MALFORMED;

	rep->code = 0;
	rep->dsn[0] = '\0';
	rep->nlines = 0;
	buf_reset(&rep->lines);
	if (c->out.len > 0 && smtp_conn_flush(c) < 0)
		return read_error();
	c->deadline_ms = clock_ms() + c->timeout_ms;
	buf_init(&line, SMTP_LINE_MAX);
	while (rep->nlines < SMTP_REPLY_LINES) {
		enum lr_result r = lr_getline(&c->lr, &line, &ending);
		if (r == LR_EOF) {
			ret = SMTP_REPLY_LOST;
			goto out;
		}
		if (r == LR_ERROR) {
			ret = read_error();
			goto out;
		}
		if (r == LR_TOOLONG)
			goto out;
		if (ending == LR_END_NONE) {
			ret = SMTP_REPLY_LOST; /* cut off by the end of input */
			goto out;
		}
		const char *s = line.data;
		if (c->trace)
			log_info("< %s: %.*s", c->trace, line.len > 300 ? 300 : (int)line.len, s);
		if (line.len < 3 || memchr(s, '\0', line.len) != NULL || !is_digit(s[0]) || !is_digit(s[1]) ||
		    !is_digit(s[2]) || s[0] < '2' || s[0] > '5' || s[1] > '5')
			goto out;
		int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
		int last;
		if (line.len == 3 || s[3] == ' ')
			last = 1;
		else if (s[3] == '-')
			last = 0;
		else
			goto out;
		if (rep->nlines > 0 && code != rep->code)
			goto out;
		const char *text = line.len > 3 ? s + 4 : "";
		size_t tlen = line.len > 3 ? line.len - 4 : 0;
		if (rep->nlines == 0) {
			rep->code = code;
			parse_dsn(text, tlen, code, rep->dsn, sizeof(rep->dsn));
		}
		if (buf_append(&rep->lines, text, tlen) < 0 || buf_putc(&rep->lines, '\n') < 0)
			goto out;
		rep->nlines++;
		if (last) {
			ret = SMTP_REPLY_OK;
			goto out;
		}
	}
out:
	buf_free(&line);
	if (ret != SMTP_REPLY_OK)
		rep->code = 0;
	return ret;
}

void smtp_reply_text(const struct smtp_reply *rep, char *out, size_t outsize)
{
	if (outsize == 0)
		return;
	int n = snprintf(out, outsize, "%d", rep->code);
	size_t o = n > 0 && (size_t)n < outsize ? (size_t)n : 0;
	int need_space = 1;
	for (size_t i = 0; i < rep->lines.len && o + 1 < outsize; i++) {
		unsigned char ch = (unsigned char)rep->lines.data[i];
		if (ch == '\n') {
			need_space = 1;
			continue;
		}
		if (need_space) {
			out[o++] = ' ';
			need_space = 0;
			if (o + 1 >= outsize)
				break;
		}
		out[o++] = (ch < 32 || ch == 127) ? '?' : (char)ch;
	}
	/* drop a trailing space left by an empty last line */
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

int smtp_reply_has_ext(const struct smtp_reply *rep, const char *keyword)
{
	size_t klen = strlen(keyword);
	const char *p = rep->lines.data, *end = p + rep->lines.len;
	int first = 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!first && len >= klen && strncasecmp(p, keyword, klen) == 0 && (len == klen || p[klen] == ' ' || p[klen] == '='))
			return 1;
		first = 0;
		p += len + 1;
	}
	return 0;
}

int smtp_reply_ext_param(const struct smtp_reply *rep, const char *keyword, char *out, size_t outsize)
{
	size_t klen = strlen(keyword);
	const char *p = rep->lines.data, *end = p + rep->lines.len;
	int first = 1;
	if (outsize > 0)
		out[0] = '\0';
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!first && len >= klen && strncasecmp(p, keyword, klen) == 0 && (len == klen || p[klen] == ' ')) {
			size_t vlen = len > klen ? len - klen - 1 : 0;
			if (outsize > 0) {
				if (vlen >= outsize)
					vlen = outsize - 1;
				memcpy(out, p + klen + (len > klen ? 1 : 0), vlen);
				out[vlen] = '\0';
			}
			return 1;
		}
		first = 0;
		p += len + 1;
	}
	return 0;
}
