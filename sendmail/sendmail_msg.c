/*
 * sendmail_msg — read the message and fix up its header section.
 *
 * Input rules (documented in man/sendmail.1):
 *   - LF and CRLF both end a line; the message is kept with LF line ends
 *     (the queue's format); a CR not followed by LF is data.
 *   - Without -i/-oi a line holding only "." ends the input (the rest of
 *     stdin is not read).  With -i, dots are data.
 *   - A missing final newline is added.
 *   - NUL bytes and lines of any length are data and kept unchanged (never
 *     truncated); only the total is limited, by message_size_limit: a
 *     larger message is refused whole (EX_DATAERR).
 * The header section ends at the first empty line, or at the first line
 * that is neither a header field ("name:") nor a continuation (a line
 * starting with white space).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "lineread.h"
#include "sendmail.h"

#define PIECE_MAX 65536

int sm_read_message(int fd, int dot_ends, struct buf *msg)
{
	struct linereader lr;
	struct buf line;
	enum lr_ending end;
	enum lr_result r;
	int at_start = 1, rc = 0;

	lr_init_fd(&lr, fd, PIECE_MAX, LR_SPLIT, -1);
	buf_init(&line, PIECE_MAX);
	for (;;) {
		r = lr_getline(&lr, &line, &end);
		if (r == LR_EOF)
			break;
		if (r != LR_LINE) {
			rc = -2;
			break;
		}
		if (dot_ends && at_start && end != LR_END_NONE && line.len == 1 && line.data[0] == '.')
			break;
		if (buf_append(msg, line.data, line.len) < 0 || (end != LR_END_NONE && buf_putc(msg, '\n') < 0)) {
			rc = -1;
			break;
		}
		at_start = end != LR_END_NONE;
	}
	if (rc == 0 && msg->len > 0 && msg->data[msg->len - 1] != '\n' && buf_putc(msg, '\n') < 0)
		rc = -1;
	buf_free(&line);
	lr_free(&lr);
	return rc;
}

/* Length of the header field name at p (line of length n) including the
 * colon, or 0 when the line is not a header field. */
static size_t field_name_len(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == ':')
			return i > 0 ? i + 1 : 0;
		if (c <= 32 || c >= 127)
			return 0;
	}
	return 0;
}

static int is_name(const char *p, size_t namelen, const char *want)
{
	return namelen == strlen(want) + 1 && strncasecmp(p, want, namelen - 1) == 0;
}

struct field {
	size_t off, len;     /* whole field, including continuation lines and the last LF */
	size_t namelen;      /* including ':' */
};

/* Next header field at msg[*pos]; 1 found, 0 end of the header section. */
static int next_field(const struct buf *msg, size_t *pos, struct field *f)
{
	const char *d = msg->data;
	size_t p = *pos, eol;
	const char *nl;

	if (p >= msg->len)
		return 0;
	nl = memchr(d + p, '\n', msg->len - p);
	eol = nl ? (size_t)(nl - d) : msg->len;
	f->namelen = field_name_len(d + p, eol - p);
	if (f->namelen == 0)
		return 0;
	f->off = p;
	p = eol < msg->len ? eol + 1 : eol;
	while (p < msg->len && (d[p] == ' ' || d[p] == '\t')) {
		nl = memchr(d + p, '\n', msg->len - p);
		p = nl ? (size_t)(nl - d) + 1 : msg->len;
	}
	f->len = p - f->off;
	*pos = p;
	return 1;
}

static void quote_phrase(struct buf *out, const char *name)
{
	const unsigned char *p;

	buf_putc(out, '"');
	for (p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			continue;
		if (*p == '"' || *p == '\\')
			buf_putc(out, '\\');
		buf_putc(out, *p);
	}
	buf_putc(out, '"');
}

void sm_from_value(const struct sm_opts *o, struct buf *out)
{
	struct passwd *pw = getpwuid(getuid());
	char name[256] = "";
	const char *login = pw ? pw->pw_name : "unknown";

	if (o->fullname)
		snprintf(name, sizeof(name), "%s", o->fullname);
	else if (pw && pw->pw_gecos)
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(pw->pw_gecos, ","), pw->pw_gecos);
	if (name[0]) {
		quote_phrase(out, name);
		buf_printf(out, " <%s@%s>", login, cf.myorigin);
	} else {
		buf_printf(out, "%s@%s", login, cf.myorigin);
	}
}

static void add_missing(const struct sm_opts *o, const struct sm_hdrinfo *h, struct buf *out)
{
	char date[64];
	unsigned char rnd[8];
	time_t now = time(NULL);
	struct tm tm;
	unsigned long long r = 0;
	size_t i;

	if (!h->has_from) {
		buf_puts(out, "From: ");
		sm_from_value(o, out);
		buf_putc(out, '\n');
	}
	if (!h->has_date && localtime_r(&now, &tm) &&
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) > 0)
		buf_printf(out, "Date: %s\n", date);
	if (!h->has_msgid) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			memset(rnd, 0, sizeof(rnd));
		for (i = 0; i < sizeof(rnd); i++)
			r = r << 8 | rnd[i];
		if (!gmtime_r(&now, &tm) || strftime(date, sizeof(date), "%Y%m%d%H%M%S", &tm) == 0)
			date[0] = 0;
		buf_printf(out, "Message-ID: <%s.%ld.%016llx@%s>\n", date, (long)getpid(), r, cf.myhostname);
	}
}

int sm_fix_headers(const struct buf *msg, int extract, const struct sm_opts *o, sm_addr_fn fn, void *ctx,
		   struct buf *out, char *err, size_t errsize)
{
	struct sm_hdrinfo h;
	struct field f;
	size_t pos = 0;
	int resent = 0, pass;

	memset(&h, 0, sizeof(h));
	/* First pass: what is there (Resent- recipients change what -t uses). */
	while (next_field(msg, &pos, &f)) {
		const char *p = msg->data + f.off;

		if (is_name(p, f.namelen, "From"))
			h.has_from = 1;
		else if (is_name(p, f.namelen, "Date"))
			h.has_date = 1;
		else if (is_name(p, f.namelen, "Message-ID"))
			h.has_msgid = 1;
		else if (is_name(p, f.namelen, "Resent-To") || is_name(p, f.namelen, "Resent-Cc") ||
			 is_name(p, f.namelen, "Resent-Bcc"))
			resent = 1;
	}
	h.header_end = pos;
	/* Second pass: copy, extracting and dropping Bcc. */
	for (pos = 0, pass = 0; next_field(msg, &pos, &f); pass++) {
		const char *p = msg->data + f.off;
		int bcc = is_name(p, f.namelen, "Bcc") || is_name(p, f.namelen, "Resent-Bcc");
		int rcpt = resent ? (is_name(p, f.namelen, "Resent-To") || is_name(p, f.namelen, "Resent-Cc") ||
				     is_name(p, f.namelen, "Resent-Bcc"))
				  : (is_name(p, f.namelen, "To") || is_name(p, f.namelen, "Cc") ||
				     is_name(p, f.namelen, "Bcc"));

		if (extract && rcpt && sm_addr_list(p + f.namelen, f.len - f.namelen, fn, ctx) < 0) {
			snprintf(err, errsize, "bad address in the %.*s header", (int)(f.namelen - 1), p);
			return -1;
		}
		if (!bcc && buf_append(out, p, f.len) < 0)
			goto toobig;
	}
	/* A last header line without LF is impossible: sm_read_message adds it. */
	add_missing(o, &h, out);
	if (h.header_end < msg->len && msg->data[h.header_end] != '\n' && buf_putc(out, '\n') < 0)
		goto toobig; /* the body started without an empty line: supply it */
	if (h.header_end == msg->len && buf_putc(out, '\n') < 0)
		goto toobig; /* headers only: end the section */
	if (buf_append(out, msg->data + h.header_end, msg->len - h.header_end) < 0)
		goto toobig;
	return 0;
toobig:
	snprintf(err, errsize, "message too big");
	return -1;
}
