/*
 * proto_deliver.c — encoder and decoder of the delivery protocol.
 *
 * The wire format is documented in proto_deliver.h.  Both directions are
 * strict: every field is checked on the way out (so a bug in the queue
 * manager cannot produce a request an agent would misread) and on the way
 * in (so a confused or hostile peer cannot make an agent act on a partial
 * request).  A response fills the recipients only after the whole message
 * has been validated: it is accepted whole or not at all.
 *
 * Public: deliver_request_init/free/add, deliver_encode_request/response,
 * deliver_decode_request/response, deliver_set_result,
 * deliver_read_request, deliver_write_response, deliver_serve.  Decoders report a short
 * reason in err; the socket helpers log theirs.
 */
#include "clock.h"
#include "proto_deliver.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "sock.h"
#include "xalloc.h"

#define NOTIFY_ALL (NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY | NOTIFY_NEVER)
#define FLAGS_ALL (DELIVER_F_8BITMIME | DELIVER_F_SMTPUTF8 | DELIVER_F_RET_HDRS)
#define MAX_RESPONSE (DELIVER_MAX_RCPT * (DELIVER_MAX_LINE + 1) + 64)

void deliver_request_init(struct deliver_request *r)
{
	memset(r, 0, sizeof(*r));
}

void deliver_request_free(struct deliver_request *r)
{
	free(r->rcpt);
	deliver_request_init(r);
}

struct deliver_rcpt *deliver_request_add(struct deliver_request *r, unsigned idx, unsigned notify,
					 const char *address)
{
	struct deliver_rcpt *rc;

	if (r->nrcpt >= DELIVER_MAX_RCPT)
		log_panic("deliver_request_add: more than %d recipients", DELIVER_MAX_RCPT);
	/* Grow in powers of two; the array is at most DELIVER_MAX_RCPT long. */
	if ((r->nrcpt & (r->nrcpt - 1)) == 0)
		r->rcpt = xreallocarray(r->rcpt, r->nrcpt ? r->nrcpt * 2 : 1, sizeof(*r->rcpt));
	rc = &r->rcpt[r->nrcpt];
	memset(rc, 0, sizeof(*rc));
	rc->idx = idx;
	rc->notify = notify;
	if (str_copy(rc->address, sizeof(rc->address), address) < 0)
		log_panic("deliver_request_add: address too long");
	rc->status = DELIVER_TEMP;
	r->nrcpt++;
	return rc;
}

/* 1 if s has no control characters (and, with ascii, no 8-bit bytes). */
static int clean_text(const char *s, int ascii)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (ascii && *p >= 0x80))
			return 0;
	return 1;
}

static int valid_queue_id(const char *s, size_t n)
{
	if (n == 0 || n >= sizeof(((struct deliver_request *)0)->queue_id))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return 0;
	}
	return 1;
}

static int valid_notify(unsigned n)
{
	return (n & ~(unsigned)NOTIFY_ALL) == 0 && (!(n & NOTIFY_NEVER) || n == NOTIFY_NEVER);
}

/* "C.S.D" with C 2/4/5 agreeing with st, S and D of 1 to 3 digits. */
static int valid_dsn(const char *s, size_t n, enum deliver_status st)
{
	static const char cls[] = { '2', '4', '5', '2' };
	size_t i = 2;

	if (n < 5 || (unsigned)st > DELIVER_RELAYED || s[0] != cls[st] || s[1] != '.')
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start || i - start > 3)
			return 0;
		if (part == 0 && (i >= n || s[i++] != '.'))
			return 0;
	}
	return i == n;
}

/* A remote MTA name: "-" or printable ASCII without spaces. */
static int mta_ok(const char *s, size_t n)
{
	if (n == 0 || n >= DELIVER_MTA_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static const char *status_name(enum deliver_status st)
{
	static const char *const names[] = { "ok", "temp", "perm", "relayed" };

	return (unsigned)st <= DELIVER_RELAYED ? names[st] : "?";
}

static int check_request(const struct deliver_request *r)
{
	if (!valid_queue_id(r->queue_id, strlen(r->queue_id)) || !clean_text(r->sender, 0) ||
	    r->nexthop[0] == '\0' || strchr(r->nexthop, ' ') != NULL || !clean_text(r->nexthop, 0) ||
	    !clean_text(r->envid, 1) || strlen(r->envid) > DELIVER_ENVID_MAX || r->arrival < 0 ||
	    r->offset > LLONG_MAX || r->length > LLONG_MAX || (r->flags & ~(unsigned)FLAGS_ALL) != 0 ||
	    r->nrcpt == 0 || r->nrcpt > DELIVER_MAX_RCPT)
		return -1;
	for (size_t i = 0; i < r->nrcpt; i++)
		if (r->rcpt[i].address[0] == '\0' || !clean_text(r->rcpt[i].address, 0) ||
		    !valid_notify(r->rcpt[i].notify))
			return -1;
	return 0;
}

int deliver_encode_request(const struct deliver_request *r, struct buf *out)
{
	buf_reset(out);
	if (check_request(r) < 0)
		return -1;
	if (buf_printf(out,
		       "tern-deliver %d\nqueue_id %s\nsender %s\nnexthop %s\noffset %llu\nlength %llu\n"
		       "arrival %lld\nflags %u\nenvid %s\n",
		       DELIVER_VERSION, r->queue_id, r->sender, r->nexthop, r->offset, r->length, r->arrival,
		       r->flags, r->envid) < 0)
		return -1;
	for (size_t i = 0; i < r->nrcpt; i++)
	{
		const char *orcpt = r->rcpt[i].orcpt[0] ? r->rcpt[i].orcpt : "-";

		for (const char *o = orcpt; *o; o++)
			if ((unsigned char)*o <= 0x20 || (unsigned char)*o >= 0x7f)
				return -1;
		if (buf_printf(out, "rcpt %u %u %s %s\n", r->rcpt[i].idx, r->rcpt[i].notify, orcpt,
			       r->rcpt[i].address) < 0)
			return -1;
	}
	return buf_puts(out, "end\n");
}

int deliver_encode_response(const struct deliver_request *r, struct buf *out)
{
	buf_reset(out);
	if (r->nrcpt == 0 || r->nrcpt > DELIVER_MAX_RCPT)
		return -1;
	if (buf_printf(out, "tern-result %d\n", DELIVER_VERSION) < 0)
		return -1;
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct deliver_rcpt *rc = &r->rcpt[i];
		const char *mta = rc->mta[0] ? rc->mta : "-";

		if (!valid_dsn(rc->dsn, strlen(rc->dsn), rc->status) || !clean_text(rc->text, 0) ||
		    strlen(rc->text) >= DELIVER_MAX_TEXT || !mta_ok(mta, strlen(mta)))
			return -1;
		if (buf_printf(out, "result %u %s %s %s %s\n", rc->idx, status_name(rc->status), rc->dsn, mta,
			       rc->text) < 0)
			return -1;
	}
	return buf_puts(out, "end\n");
}

/* Cursor over an encoded message. */
struct rd {
	const char *p;
	size_t n, off;
	int lineno;
	char *err;
	size_t errsize;
};

static int rd_err(struct rd *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_err(struct rd *d, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (d->errsize > 0)
		snprintf(d->err, d->errsize, "line %d: %s", d->lineno, why);
	return -1;
}

/* Next LF-terminated line, without control characters. */
static int next_line(struct rd *d, const char **line, size_t *len)
{
	size_t left = d->n - d->off, scan = left < DELIVER_MAX_LINE + 1 ? left : DELIVER_MAX_LINE + 1;
	const char *s = d->p + d->off;
	const char *nl = memchr(s, '\n', scan);

	d->lineno++;
	if (nl == NULL)
		return rd_err(d, left > DELIVER_MAX_LINE ? "line too long" : "truncated message");
	*line = s;
	*len = (size_t)(nl - s);
	for (size_t i = 0; i < *len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return rd_err(d, "control character");
	d->off += *len + 1;
	return 0;
}

/* Next line, which must be "name value"; its value goes to val and vlen. */
static int expect(struct rd *d, const char *name, const char **val, size_t *vlen)
{
	size_t nl = strlen(name), len;
	const char *line;

	if (next_line(d, &line, &len) < 0)
		return -1;
	if (len <= nl || memcmp(line, name, nl) != 0 || line[nl] != ' ')
		return rd_err(d, "expected \"%s\"", name);
	*val = line + nl + 1;
	*vlen = len - nl - 1;
	return 0;
}

static int expect_end(struct rd *d)
{
	const char *line = NULL;
	size_t len = 0;

	if (next_line(d, &line, &len) < 0)
		return -1;
	if (len != 3 || memcmp(line, "end", 3) != 0)
		return rd_err(d, "expected \"end\"");
	if (d->off != d->n)
		return rd_err(d, "%zu bytes after \"end\"", d->n - d->off);
	return 0;
}

/* Canonical decimal (no sign, no leading zero) of at most max. */
static int parse_dec(const char *s, size_t n, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (n == 0 || n > 20 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (s[i] < '0' || s[i] > '9' || d > max || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int field_num(struct rd *d, const char *name, unsigned long long max, unsigned long long *out)
{
	const char *v = NULL;
	size_t n = 0;

	if (expect(d, name, &v, &n) < 0)
		return -1;
	if (parse_dec(v, n, max, out) < 0)
		return rd_err(d, "bad %s", name);
	return 0;
}

/* Copy a text field into dst[size]; ascii rejects 8-bit, nonempty requires a value. */
static int field_text(struct rd *d, const char *name, char *dst, size_t size, int ascii, int nonempty)
{
	const char *v = NULL;
	size_t n = 0;

	if (expect(d, name, &v, &n) < 0)
		return -1;
	if (n >= size || (nonempty && n == 0))
		return rd_err(d, "bad %s length", name);
	for (size_t i = 0; ascii && i < n; i++)
		if ((unsigned char)v[i] >= 0x80)
			return rd_err(d, "8-bit %s", name);
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

/* "IDX NOTIFY ORCPT ADDRESS" of a rcpt line. */
static int parse_rcpt(struct rd *d, const char *v, size_t n, struct deliver_request *r)
{
	const char *sp1 = memchr(v, ' ', n), *sp2, *sp0;
	unsigned long long idx, notify;
	size_t olen;

	if (sp1 == NULL || (sp0 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - v))) == NULL ||
	    (sp2 = memchr(sp0 + 1, ' ', n - (size_t)(sp0 + 1 - v))) == NULL)
		return rd_err(d, "bad rcpt");
	olen = (size_t)(sp2 - sp0 - 1);
	if (olen == 0 || olen >= DELIVER_ORCPT_MAX)
		return rd_err(d, "bad rcpt orcpt");
	for (size_t i = 0; i < olen; i++)
		if ((unsigned char)sp0[1 + i] <= 0x20 || (unsigned char)sp0[1 + i] >= 0x7f)
			return rd_err(d, "bad rcpt orcpt");
	if (parse_dec(v, (size_t)(sp1 - v), UINT_MAX, &idx) < 0 ||
	    parse_dec(sp1 + 1, (size_t)(sp0 - sp1 - 1), NOTIFY_ALL, &notify) < 0 || !valid_notify((unsigned)notify))
		return rd_err(d, "bad rcpt index or notify");
	size_t alen = n - (size_t)(sp2 + 1 - v);
	if (alen == 0 || alen >= ADDR_SIZE)
		return rd_err(d, "bad rcpt address length");
	if (r->nrcpt >= DELIVER_MAX_RCPT)
		return rd_err(d, "too many recipients");
	for (size_t i = 0; i < r->nrcpt; i++)
		if (r->rcpt[i].idx == idx)
			return rd_err(d, "recipient index %llu repeated", idx);
	char addr[ADDR_SIZE];
	memcpy(addr, sp2 + 1, alen);
	addr[alen] = '\0';
	struct deliver_rcpt *rc = deliver_request_add(r, (unsigned)idx, (unsigned)notify, addr);
	if (!(olen == 1 && sp0[1] == '-')) {
		memcpy(rc->orcpt, sp0 + 1, olen);
		rc->orcpt[olen] = '\0';
	}
	return 0;
}

static int decode_header(struct rd *d, struct deliver_request *r)
{
	unsigned long long v;

	if (field_num(d, "tern-deliver", DELIVER_VERSION, &v) < 0)
		return -1;
	if (v != DELIVER_VERSION)
		return rd_err(d, "unsupported version");
	if (field_text(d, "queue_id", r->queue_id, sizeof(r->queue_id), 1, 1) < 0)
		return -1;
	if (!valid_queue_id(r->queue_id, strlen(r->queue_id)))
		return rd_err(d, "bad queue_id");
	if (field_text(d, "sender", r->sender, sizeof(r->sender), 0, 0) < 0 ||
	    field_text(d, "nexthop", r->nexthop, sizeof(r->nexthop), 0, 1) < 0)
		return -1;
	if (strchr(r->nexthop, ' ') != NULL)
		return rd_err(d, "bad nexthop");
	if (field_num(d, "offset", LLONG_MAX, &r->offset) < 0 || field_num(d, "length", LLONG_MAX, &r->length) < 0 ||
	    field_num(d, "arrival", LLONG_MAX, &v) < 0)
		return -1;
	r->arrival = (long long)v;
	if (field_num(d, "flags", FLAGS_ALL, &v) < 0)
		return -1;
	r->flags = (unsigned)v;
	return field_text(d, "envid", r->envid, sizeof(r->envid), 1, 0);
}

int deliver_decode_request(const char *p, size_t n, struct deliver_request *r, char *err, size_t errsize)
{
	struct rd d = { p, n, 0, 0, err, errsize };
	const char *line = NULL;
	size_t len = 0;

	deliver_request_free(r);
	if (decode_header(&d, r) < 0)
		goto fail;
	for (;;) {
		size_t save = d.off;
		if (next_line(&d, &line, &len) < 0)
			goto fail;
		if (len > 5 && memcmp(line, "rcpt ", 5) == 0) {
			if (parse_rcpt(&d, line + 5, len - 5, r) < 0)
				goto fail;
			continue;
		}
		d.off = save;
		d.lineno--;
		break;
	}
	if (r->nrcpt == 0) {
		rd_err(&d, "no recipients");
		goto fail;
	}
	if (expect_end(&d) < 0)
		goto fail;
	return 0;
fail:
	deliver_request_free(r);
	return -1;
}

static int parse_status(const char *s, size_t n, enum deliver_status *st)
{
	static const enum deliver_status all[] = { DELIVER_OK, DELIVER_TEMP, DELIVER_PERM, DELIVER_RELAYED };

	for (size_t i = 0; i < 4; i++) {
		const char *name = status_name(all[i]);
		if (strlen(name) == n && memcmp(name, s, n) == 0) {
			*st = all[i];
			return 0;
		}
	}
	return -1;
}

/* One "result" line for recipient rc; fills it only when fill is set. */
static int parse_result(struct rd *d, struct deliver_rcpt *rc, int fill)
{
	const char *v = "", *sp1, *sp2, *sp3, *sp4;
	unsigned long long idx;
	enum deliver_status st;
	size_t n = 0, tlen;

	if (expect(d, "result", &v, &n) < 0)
		return -1;
	sp1 = memchr(v, ' ', n);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - v)) : NULL;
	sp3 = sp2 ? memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - v)) : NULL;
	sp4 = sp3 ? memchr(sp3 + 1, ' ', n - (size_t)(sp3 + 1 - v)) : NULL;
	if (sp4 == NULL)
		return rd_err(d, "bad result");
	if (parse_dec(v, (size_t)(sp1 - v), UINT_MAX, &idx) < 0 || idx != rc->idx)
		return rd_err(d, "result index does not match the request");
	if (parse_status(sp1 + 1, (size_t)(sp2 - sp1 - 1), &st) < 0)
		return rd_err(d, "bad status");
	if (!valid_dsn(sp2 + 1, (size_t)(sp3 - sp2 - 1), st))
		return rd_err(d, "bad dsn");
	if (!mta_ok(sp3 + 1, (size_t)(sp4 - sp3 - 1)))
		return rd_err(d, "bad remote MTA");
	tlen = n - (size_t)(sp4 + 1 - v);
	if (tlen >= DELIVER_MAX_TEXT)
		return rd_err(d, "result text too long");
	if (fill) {
		size_t mlen = (size_t)(sp4 - sp3 - 1);

		rc->status = st;
		memcpy(rc->dsn, sp2 + 1, (size_t)(sp3 - sp2 - 1));
		rc->dsn[sp3 - sp2 - 1] = '\0';
		if (mlen == 1 && sp3[1] == '-')
			mlen = 0;
		memcpy(rc->mta, sp3 + 1, mlen);
		rc->mta[mlen] = '\0';
		memcpy(rc->text, sp4 + 1, tlen);
		rc->text[tlen] = '\0';
	}
	return 0;
}

int deliver_decode_response(const char *p, size_t n, struct deliver_request *r, char *err, size_t errsize)
{
	/* Pass 0 validates everything, pass 1 fills: all or nothing. */
	for (int fill = 0; fill < 2; fill++) {
		struct rd d = { p, n, 0, 0, err, errsize };
		unsigned long long v;

		if (field_num(&d, "tern-result", DELIVER_VERSION, &v) < 0)
			return -1;
		if (v != DELIVER_VERSION)
			return rd_err(&d, "unsupported version");
		for (size_t i = 0; i < r->nrcpt; i++)
			if (parse_result(&d, &r->rcpt[i], fill) < 0)
				return -1;
		if (expect_end(&d) < 0)
			return -1;
	}
	return r->nrcpt > 0 ? 0 : -1;
}

void deliver_set_result(struct deliver_rcpt *rc, enum deliver_status st, const char *dsn, const char *fmt, ...)
{
	va_list ap;

	rc->status = st;
	if (str_copy(rc->dsn, sizeof(rc->dsn), dsn) < 0)
		rc->dsn[0] = '\0'; /* the encoder then refuses it instead of sending a cut code */
	va_start(ap, fmt);
	vsnprintf(rc->text, sizeof(rc->text), fmt, ap);
	va_end(ap);
	for (char *t = rc->text; *t; t++)
		if ((unsigned char)*t < 0x20 || *t == 0x7f)
			*t = '?';
}

/* Wait until sock is readable before the deadline; 0, or -1 with errno. */
static int wait_readable(int sock, long long deadline)
{
	for (;;) {
		long long left = deadline - clock_ms();
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		int r;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static int ends_request(const struct buf *b)
{
	return (b->len == 4 && memcmp(b->data, "end\n", 4) == 0) ||
	       (b->len > 4 && memcmp(b->data + b->len - 5, "\nend\n", 5) == 0);
}

/* Read bytes until the request's "end" line, EOF, the size limit or the deadline. */
/* 0: a whole request is in `in`; 1: the peer closed or went quiet before
 * sending anything (not an error); -1: error, logged. */
static int read_all(int sock, int timeout_ms, struct buf *in, int *fd)
{
	long long deadline = clock_ms() + (timeout_ms < 0 ? 24LL * 3600 * 1000 : timeout_ms);
	char chunk[65536];

	while (!ends_request(in)) {
		size_t room = in->max - in->len;
		int extra = -1;
		ssize_t n;

		if (room == 0) {
			log_warning("delivery request longer than %d bytes", DELIVER_MAX_REQUEST);
			return -1;
		}
		if (wait_readable(sock, deadline) < 0) {
			if (in->len == 0 && *fd < 0)
				return 1; /* idle between requests: the peer is done with us */
			log_warning("reading delivery request: %s", strerror(errno));
			return -1;
		}
		n = sock_recv_fd(sock, &extra, chunk, room < sizeof(chunk) ? room : sizeof(chunk));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			log_warning("reading delivery request: %s", strerror(errno));
			return -1;
		}
		/* The descriptor rides on the first bytes and only there. */
		if (extra >= 0 && in->len > 0) {
			close(extra);
			log_warning("delivery request: descriptor after the first bytes");
			return -1;
		}
		if (extra >= 0)
			*fd = extra;
		if (n == 0 && in->len == 0 && *fd < 0)
			return 1; /* a clean end between requests */
		if (n == 0)
			break; /* the decoder reports the truncation */
		if (*fd < 0) {
			log_warning("delivery request without a message descriptor");
			return -1;
		}
		buf_append(in, chunk, (size_t)n); /* fits: n <= room */
	}
	return 0;
}

int deliver_read_request(int sock, int timeout_ms, struct deliver_request *r, int *fd)
{
	struct buf in;
	char err[256];
	int rc = -1;

	*fd = -1;
	buf_init(&in, DELIVER_MAX_REQUEST);
	if (read_all(sock, timeout_ms, &in, fd) != 0)
		goto done;
	if (*fd < 0) {
		log_warning("delivery request without a message descriptor");
		goto done;
	}
	if (deliver_decode_request(in.data, in.len, r, err, sizeof(err)) < 0) {
		log_warning("bad delivery request: %s", err);
		goto done;
	}
	rc = 0;
done:
	if (rc < 0 && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	buf_free(&in);
	return rc;
}

int deliver_write_response(int sock, const struct deliver_request *r)
{
	struct buf out;
	int rc;

	buf_init(&out, MAX_RESPONSE);
	rc = deliver_encode_response(r, &out);
	if (rc < 0)
		log_warning("cannot encode delivery response for %s", r->queue_id);
	else if ((rc = write_all(sock, out.data, out.len)) < 0)
		log_warning("writing delivery response: %s", strerror(errno));
	buf_free(&out);
	return rc;
}

void deliver_serve(int sock, int timeout_ms, deliver_fn deliver)
{
	for (;;) {
		struct deliver_request r;
		int msgfd = -1, ok;

		deliver_request_init(&r);
		if (deliver_read_request(sock, timeout_ms, &r, &msgfd) < 0) {
			deliver_request_free(&r);
			return;
		}
		if (msgfd < 0) {
			log_warning("delivery request %s without a message descriptor", r.queue_id);
			deliver_request_free(&r);
			return;
		}
		deliver(&r, msgfd);
		close(msgfd);
		ok = deliver_write_response(sock, &r) == 0;
		if (!ok)
			log_warning("%s: cannot send the delivery results: %s", r.queue_id, strerror(errno));
		deliver_request_free(&r);
		/* Stopping or retiring (the master reloads): no further request;
		 * the queue manager sends it on a fresh connection. */
		if (!ok || server_terminating)
			return;
	}
}

int deliver_content_present(int msgfd, const struct deliver_request *r)
{
	struct stat st;
	unsigned long long size;

	if (fstat(msgfd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	size = (unsigned long long)st.st_size;
	return r->offset <= size && r->length <= size - r->offset;
}
