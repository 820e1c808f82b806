/*
 * send_mime — the header facts send needs and 8-bit → quoted-printable.
 *
 * send_count_received counts the Received: headers of the content (the hop
 * limit).  smtp_send_content_qp sends a message to a peer without 8BITMIME
 * (RFC 6152: 8-bit content may only go to a peer that offers it) with its
 * 8-bit bodies converted to quoted-printable (RFC 2045 6.7):
 *
 *   - a single-part message: its body is encoded, its
 *     Content-Transfer-Encoding header replaced by "quoted-printable" (and
 *     "MIME-Version: 1.0" added when missing);
 *   - a multipart message: each part of the first level whose body holds
 *     8-bit bytes is treated the same way, the boundaries, the preamble
 *     and the epilogue pass unchanged;
 *   - not converted (sent as they are): nested multiparts and message
 *     parts (RFC 2046 forbids QP there), parts already in base64 or
 *     quoted-printable, 8-bit bytes in header fields (that would need RFC
 *     2047 rewriting), parts past the MIME_MAX_ENT'th.
 *
 * Only bodies that hold an 8-bit byte are converted, so a 7-bit part is
 * sent byte for byte.  Two passes over the file: the first finds which
 * entities to convert, the second (the same walk) writes.  Encoded lines
 * are at most 76 characters (soft breaks "="), whitespace before a line
 * end and every CR/LF inside a line are encoded, so the converted body has
 * no bare CR or LF; the output then goes through the dot-stuffing CRLF
 * writer (send_data.c) like any content.  Memory is bounded: one line
 * reader (long lines come in pieces) and one bounded buffer for the
 * Content-Type / Content-Transfer-Encoding header being parsed.
 *
 * Public: send_count_received, send_mime_needs_qp, smtp_send_content_qp.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "send.h"
#include "xalloc.h"

#define MIME_LINE_MAX 8192   /* longer lines are handled in pieces */
#define MIME_HDR_MAX 8192    /* one Content-Type header, unfolded */
#define MIME_BOUNDARY_MAX 200 /* RFC 2046 says 70 */
#define MIME_MAX_ENT 1000    /* entities tracked: the message and its parts */

/* ---- the content as a line source ---- */

struct src {
	int fd;
	unsigned long long pos, end;
};

static ssize_t src_read(void *ctx, void *p, size_t n)
{
	struct src *s = ctx;
	if (s->pos >= s->end)
		return 0;
	if (n > s->end - s->pos)
		n = (size_t)(s->end - s->pos);
	for (;;) {
		ssize_t r = pread(s->fd, p, n, (off_t)s->pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			errno = EIO; /* shorter than the request says */
			return -1;
		}
		if (r > 0)
			s->pos += (unsigned long long)r;
		return r;
	}
}

static int src_open(struct src *s, struct linereader *lr, int fd, unsigned long long offset,
		    unsigned long long length)
{
	if (offset > (unsigned long long)INT64_MAX - length) {
		errno = EOVERFLOW;
		return -1;
	}
	s->fd = fd;
	s->pos = offset;
	s->end = offset + length;
	lr_init(lr, src_read, s, MIME_LINE_MAX, LR_SPLIT);
	return 0;
}

/* Does the line start with header name (followed by ':', maybe after blanks)? */
static int is_header(const char *p, size_t n, const char *name)
{
	size_t k = strlen(name);
	if (n < k || strncasecmp(p, name, k) != 0)
		return 0;
	while (k < n && (p[k] == ' ' || p[k] == '\t'))
		k++;
	return k < n && p[k] == ':';
}

long send_count_received(int msgfd, unsigned long long offset, unsigned long long length)
{
	struct src s;
	struct linereader lr;
	struct buf line;
	enum lr_ending ending;
	enum lr_result r;
	long count = 0;
	int at_start = 1;

	if (src_open(&s, &lr, msgfd, offset, length) < 0)
		return -1;
	buf_init(&line, MIME_LINE_MAX);
	while ((r = lr_getline(&lr, &line, &ending)) == LR_LINE) {
		if (at_start && line.len == 0 && ending != LR_END_NONE)
			break; /* end of the header section */
		if (at_start && is_header(line.data, line.len, "Received"))
			count++;
		at_start = ending != LR_END_NONE;
	}
	buf_free(&line);
	lr_free(&lr);
	return r == LR_ERROR ? -1 : count;
}

/* ---- the MIME walk ---- */

enum state { TOP_HDR, TOP_BODY, PREAMBLE, PART_HDR, PART_BODY, EPILOGUE };
enum hkind { H_OTHER, H_CT, H_CTE };

struct ent {
	unsigned char candidate; /* a leaf whose encoding may be changed */
	unsigned char has8;      /* its body holds an 8-bit byte */
};

struct walk {
	int emit;                /* 0: scan pass, 1: write pass */
	struct ent *ent;         /* MIME_MAX_ENT entries */
	size_t nent, cur;        /* entities seen; the current one */
	struct smtp_conn *c;
	int dstate, err;
	enum state st;
	/* the current entity's header section */
	enum hkind kind;
	struct buf hdr;          /* the CT or CTE header being read */
	int hdr_overflow, mime_version, multipart, message, cte_ok;
	char boundary[MIME_BOUNDARY_MAX + 1]; /* of the top-level multipart */
	/* quoted-printable encoder */
	size_t col;
	int pend_ws;             /* a blank not yet known to end its line, or 0 */
};

static void out(struct walk *w, const char *p, size_t n)
{
	if (w->emit && !w->err && n > 0 && smtp_data_put(w->c, p, n, &w->dstate) < 0)
		w->err = errno ? errno : EIO;
}

static int converting(const struct walk *w)
{
	return w->emit && w->cur < w->nent && w->ent[w->cur].candidate && w->ent[w->cur].has8;
}

static void qp_token(struct walk *w, const char *t, size_t n)
{
	if (w->col + n > 75) { /* 75 + the soft break's "=" = 76 */
		out(w, "=\n", 2);
		w->col = 0;
	}
	out(w, t, n);
	w->col += n;
}

static void qp_byte(struct walk *w, unsigned char ch)
{
	static const char hex[] = "0123456789ABCDEF";
	if (ch >= 33 && ch <= 126 && ch != '=') {
		char t = (char)ch;
		qp_token(w, &t, 1);
	} else {
		char t[3] = { '=', hex[ch >> 4], hex[ch & 15] };
		qp_token(w, t, 3);
	}
}

/* Encode a piece of a body line; ended: the source line ends here. */
static void qp_put(struct walk *w, const char *p, size_t n, int ended)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (w->pend_ws) {
			char t = (char)w->pend_ws;
			qp_token(w, &t, 1); /* not at the end of the line: literal */
			w->pend_ws = 0;
		}
		if (ch == ' ' || ch == '\t')
			w->pend_ws = ch;
		else
			qp_byte(w, ch);
	}
	if (ended) {
		if (w->pend_ws)
			qp_byte(w, (unsigned char)w->pend_ws); /* RFC 2045 rule 3 */
		w->pend_ws = 0;
		out(w, "\n", 1);
		w->col = 0;
	}
}

static void qp_end(struct walk *w)
{
	if (w->pend_ws)
		qp_byte(w, (unsigned char)w->pend_ws);
	w->pend_ws = 0;
}

static void body_line(struct walk *w, const char *p, size_t n, int ended)
{
	if (!w->emit) {
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] >= 0x80 && w->cur < w->nent)
				w->ent[w->cur].has8 = 1;
		return;
	}
	if (converting(w)) {
		qp_put(w, p, n, ended);
		return;
	}
	out(w, p, n);
	if (ended)
		out(w, "\n", 1);
}

/* The value of the header in w->hdr, after its colon and blanks. */
static const char *hdr_value(const struct walk *w)
{
	const char *v = memchr(w->hdr.data, ':', w->hdr.len);
	if (v == NULL)
		return "";
	for (v++; *v == ' ' || *v == '\t'; v++)
		;
	return v;
}

static void parse_boundary(struct walk *w, const char *v)
{
	for (const char *p = v; (p = strchr(p, ';')) != NULL;) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary", 8) != 0)
			continue;
		p += 8;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p++ != '=')
			continue;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = 0;
		if (*p == '"') {
			p++;
			while (p[n] && p[n] != '"')
				n++;
		} else {
			while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t')
				n++;
		}
		if (n == 0 || n > MIME_BOUNDARY_MAX)
			return;
		memcpy(w->boundary, p, n);
		w->boundary[n] = '\0';
		return;
	}
}

/* The header in w->hdr is complete. */
static void header_done(struct walk *w)
{
	if (w->kind == H_CT && !w->hdr_overflow) {
		const char *v = hdr_value(w);
		if (strncasecmp(v, "multipart/", 10) == 0) {
			w->multipart = 1;
			if (w->st == TOP_HDR)
				parse_boundary(w, v);
		} else if (strncasecmp(v, "message/", 8) == 0) {
			w->message = 1;
		}
	} else if (w->kind == H_CT) {
		w->message = 1; /* unreadable: leave the entity alone */
	} else if (w->kind == H_CTE) {
		const char *v = hdr_value(w);
		size_t n = 0;
		while (v[n] && !isspace((unsigned char)v[n]) && v[n] != '(')
			n++;
		w->cte_ok = (n == 4 && (strncasecmp(v, "7bit", 4) == 0 || strncasecmp(v, "8bit", 4) == 0)) ||
			    (n == 6 && strncasecmp(v, "binary", 6) == 0);
	}
	w->kind = H_OTHER;
	buf_reset(&w->hdr);
	w->hdr_overflow = 0;
}

static void entity_start(struct walk *w)
{
	w->kind = H_OTHER;
	buf_reset(&w->hdr);
	w->hdr_overflow = w->mime_version = w->multipart = w->message = 0;
	w->cte_ok = 1; /* no Content-Transfer-Encoding means 7bit */
}

/* The blank line after an entity's header section. */
static void headers_end(struct walk *w)
{
	int top = w->st == TOP_HDR;
	header_done(w);
	if (!w->emit && w->cur < MIME_MAX_ENT) {
		w->ent[w->cur].candidate = w->cte_ok && !w->multipart && !w->message;
		if (w->nent < w->cur + 1)
			w->nent = w->cur + 1;
	}
	if (converting(w)) {
		out(w, "Content-Transfer-Encoding: quoted-printable\n", 44);
		if (top && !w->mime_version)
			out(w, "MIME-Version: 1.0\n", 18);
	}
	out(w, "\n", 1);
	if (top)
		w->st = w->multipart && w->cte_ok && w->boundary[0] ? PREAMBLE : TOP_BODY;
	else
		w->st = PART_BODY;
}

static void header_line(struct walk *w, const char *p, size_t n, int at_start, int ended)
{
	int cont = !at_start || (n > 0 && (p[0] == ' ' || p[0] == '\t'));
	if (!cont) {
		header_done(w);
		if (is_header(p, n, "Content-Type"))
			w->kind = H_CT;
		else if (is_header(p, n, "Content-Transfer-Encoding"))
			w->kind = H_CTE;
		else if (is_header(p, n, "MIME-Version"))
			w->mime_version = 1;
	}
	if (w->kind != H_OTHER && buf_append(&w->hdr, p, n) < 0)
		w->hdr_overflow = 1;
	/* a converted entity loses its old Content-Transfer-Encoding */
	if (w->kind == H_CTE && converting(w))
		return;
	out(w, p, n);
	if (ended)
		out(w, "\n", 1);
}

/* 1: "--boundary", 2: "--boundary--" (trailing blanks allowed), else 0. */
static int boundary_line(const struct walk *w, const char *p, size_t n)
{
	size_t bl = strlen(w->boundary);
	if (bl == 0 || n < bl + 2 || p[0] != '-' || p[1] != '-' || memcmp(p + 2, w->boundary, bl) != 0)
		return 0;
	size_t i = bl + 2;
	int close = 0;
	if (i + 2 <= n && p[i] == '-' && p[i + 1] == '-') {
		close = 1;
		i += 2;
	}
	for (; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return 0;
	return close ? 2 : 1;
}

static void walk_piece(struct walk *w, const char *p, size_t n, int at_start, int ended)
{
	switch (w->st) {
	case TOP_HDR:
	case PART_HDR:
		if (at_start && n == 0 && ended)
			headers_end(w);
		else
			header_line(w, p, n, at_start, ended);
		return;
	case TOP_BODY:
		body_line(w, p, n, ended);
		return;
	case PREAMBLE:
	case PART_BODY:
	case EPILOGUE: {
		int b = at_start && w->st != EPILOGUE && (ended || n <= MIME_BOUNDARY_MAX + 8) ? boundary_line(w, p, n) : 0;
		if (b == 0) {
			if (w->st == PART_BODY)
				body_line(w, p, n, ended);
			else {
				out(w, p, n);
				if (ended)
					out(w, "\n", 1);
			}
			return;
		}
		if (w->st == PART_BODY && converting(w))
			qp_end(w);
		out(w, p, n);
		if (ended)
			out(w, "\n", 1);
		if (b == 2) {
			w->st = EPILOGUE;
			w->cur = MIME_MAX_ENT; /* no entity */
			return;
		}
		w->cur = w->st == PREAMBLE ? 1 : w->cur + 1; /* the same in both passes */
		entity_start(w);
		w->st = PART_HDR;
		return;
	}
	}
}

/* One pass over the content.  0, or -1 with errno. */
static int walk(struct walk *w, int msgfd, unsigned long long offset, unsigned long long length)
{
	struct src s;
	struct linereader lr;
	struct buf line;
	enum lr_ending ending;
	enum lr_result r = LR_EOF;
	int at_start = 1;

	if (src_open(&s, &lr, msgfd, offset, length) < 0)
		return -1;
	buf_init(&line, MIME_LINE_MAX);
	w->st = TOP_HDR;
	w->cur = 0;
	w->col = 0;
	w->pend_ws = 0;
	w->boundary[0] = '\0';
	entity_start(w);
	while (!w->err && (r = lr_getline(&lr, &line, &ending)) == LR_LINE) {
		int ended = ending != LR_END_NONE;
		walk_piece(w, line.data, line.len, at_start, ended);
		at_start = ended;
	}
	if (converting(w))
		qp_end(w);
	buf_free(&line);
	lr_free(&lr);
	if (w->err) {
		errno = w->err;
		return -1;
	}
	return r == LR_ERROR ? -1 : 0;
}

static void walk_init(struct walk *w)
{
	memset(w, 0, sizeof(*w));
	w->ent = xcalloc(MIME_MAX_ENT, sizeof(*w->ent));
	buf_init(&w->hdr, MIME_HDR_MAX);
}

static void walk_free(struct walk *w)
{
	free(w->ent);
	buf_free(&w->hdr);
}

static int any_convert(const struct walk *w)
{
	for (size_t i = 0; i < w->nent; i++)
		if (w->ent[i].candidate && w->ent[i].has8)
			return 1;
	return 0;
}

int send_mime_needs_qp(int msgfd, unsigned long long offset, unsigned long long length)
{
	struct walk w;
	walk_init(&w);
	int rc = walk(&w, msgfd, offset, length);
	if (rc == 0)
		rc = any_convert(&w);
	walk_free(&w);
	return rc;
}

int smtp_send_content_qp(struct smtp_conn *c, int msgfd, unsigned long long offset, unsigned long long length)
{
	struct walk w;
	int rc;
	walk_init(&w);
	rc = walk(&w, msgfd, offset, length);
	if (rc == 0) {
		w.emit = 1;
		w.c = c;
		rc = walk(&w, msgfd, offset, length);
	}
	if (rc == 0)
		rc = smtp_data_end(c, w.dstate);
	walk_free(&w);
	return rc;
}
