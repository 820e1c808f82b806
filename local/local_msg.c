/*
 * local_msg — access to the message content passed by the queue manager.
 *
 * The content is [offset, offset+length) of the queue file's descriptor,
 * read with pread in chunks (never held whole in memory).  local_msg_scan
 * reads the header section once through the bounded line reader (split
 * mode, so an overlong header line costs nothing) and remembers the
 * Delivered-To: values for loop detection.
 *
 * Public: local_msg_init, local_msg_free, local_msg_pread, local_msg_scan,
 * local_msg_has_delivered_to.  Errors are returned (-1, errno), never fatal.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lineread.h"
#include "local.h"
#include "strutil.h"

/* Longest header line piece handed out by the reader. */
#define SCAN_PIECE 4096
/* A Delivered-To value longer than this cannot match any recipient. */
#define DT_VALUE_MAX (ADDR_SIZE * 2)

void local_msg_init(struct local_msg *m, int fd, unsigned long long offset, unsigned long long length)
{
	m->fd = fd;
	m->offset = offset;
	m->length = length;
	buf_init(&m->delivered_to, (size_t)LOCAL_MAX_DELIVERED_TO * ADDR_SIZE);
	m->n_delivered_to = 0;
	m->too_many_delivered_to = 0;
}

void local_msg_free(struct local_msg *m)
{
	buf_free(&m->delivered_to);
}

ssize_t local_msg_pread(const struct local_msg *m, unsigned long long pos, void *p, size_t n)
{
	if (pos >= m->length || n == 0)
		return 0;
	if (m->offset > (unsigned long long)INT64_MAX - m->length) {
		errno = EOVERFLOW;
		return -1;
	}
	unsigned long long left = m->length - pos;
	size_t want = left < n ? (size_t)left : n;
	for (;;) {
		ssize_t r = pread(m->fd, p, want, (off_t)(m->offset + pos));
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			errno = EIO; /* the file is shorter than the request claims */
			return -1;
		}
		return r;
	}
}

struct scan_ctx {
	const struct local_msg *m;
	unsigned long long pos;
};

static ssize_t scan_read(void *ctx, void *p, size_t n)
{
	struct scan_ctx *c = ctx;
	ssize_t r = local_msg_pread(c->m, c->pos, p, n);
	if (r > 0)
		c->pos += (unsigned long long)r;
	return r;
}

/* Trim blanks and one pair of angle brackets, lower-case, and remember. */
static void remember_delivered_to(struct local_msg *m, struct buf *v, int bad)
{
	m->n_delivered_to++;
	if (m->n_delivered_to > LOCAL_MAX_DELIVERED_TO) {
		m->too_many_delivered_to = 1;
		return;
	}
	if (bad)
		return;
	char *s = v->data;
	size_t n = v->len;
	while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\r')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	if (n == 0 || n >= ADDR_SIZE || memchr(s, '\0', n) != NULL)
		return;
	s[n] = '\0';
	str_lower(s);
	if (buf_append(&m->delivered_to, s, n + 1) < 0)
		m->too_many_delivered_to = 1; /* cannot happen: sized for the maximum */
}

/* Does this line start a header field?  Sets *value to the byte after ':'. */
static int header_name_is(const char *p, size_t n, const char *name, size_t *value)
{
	size_t i = 0;
	while (i < n && p[i] != ':') {
		unsigned char c = (unsigned char)p[i];
		if (c <= 32 || c >= 127)
			return -1; /* not a header line: the body starts here */
		i++;
	}
	if (i == n || i == 0)
		return -1;
	*value = i + 1;
	return strlen(name) == i && strncasecmp(p, name, i) == 0;
}

int local_msg_scan(struct local_msg *m)
{
	struct scan_ctx ctx = { m, 0 };
	struct linereader lr;
	struct buf line, val;
	enum lr_ending ending = LR_END_LF;
	int line_start = 1, in_dt = 0, dt_bad = 0, ret = 0;

	buf_reset(&m->delivered_to);
	m->n_delivered_to = 0;
	m->too_many_delivered_to = 0;
	lr_init(&lr, scan_read, &ctx, SCAN_PIECE, LR_SPLIT);
	buf_init(&line, SCAN_PIECE);
	buf_init(&val, DT_VALUE_MAX);
	for (;;) {
		enum lr_result res = lr_getline(&lr, &line, &ending);
		if (res == LR_EOF)
			break;
		if (res != LR_LINE) {
			ret = -1;
			break;
		}
		int first = line_start;
		line_start = ending != LR_END_NONE;
		if (first) {
			if (line.len == 0 || (line.len == 1 && line.data[0] == '\r'))
				break; /* end of the header section */
			if (line.data[0] == ' ' || line.data[0] == '\t') {
				if (in_dt && buf_append(&val, line.data, line.len) < 0)
					dt_bad = 1;
				continue;
			}
			if (in_dt)
				remember_delivered_to(m, &val, dt_bad);
			in_dt = 0;
			size_t vpos = 0;
			int is = header_name_is(line.data, line.len, "Delivered-To", &vpos);
			if (is < 0)
				break; /* not a header: the body starts without a blank line */
			if (is) {
				in_dt = 1;
				dt_bad = 0;
				buf_reset(&val);
				if (buf_append(&val, line.data + vpos, line.len - vpos) < 0)
					dt_bad = 1;
			}
		} else if (in_dt && buf_append(&val, line.data, line.len) < 0) {
			dt_bad = 1; /* rest of an overlong line */
		}
	}
	if (in_dt && ret == 0)
		remember_delivered_to(m, &val, dt_bad);
	buf_free(&val);
	buf_free(&line);
	lr_free(&lr);
	return ret;
}

int local_msg_has_delivered_to(const struct local_msg *m, const char *rcpt)
{
	const char *p = m->delivered_to.data;
	const char *end = p + m->delivered_to.len;
	while (p < end) {
		size_t n = strlen(p);
		if (strcasecmp(p, rcpt) == 0)
			return 1;
		p += n + 1;
	}
	return 0;
}
