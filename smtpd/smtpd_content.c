/*
 * smtpd_content.c — the message content sink for DATA and BDAT.
 *
 * Public: smtpd_content_begin, smtpd_content_put, smtpd_content_finish,
 * smtpd_content_abort.
 *
 * The queue file is opened (qfw_begin) before the client sends content, so
 * a full disk is reported early.  tern's Received: header goes first; then
 * the content, with LF line ends (the queue's form; send puts CRLF back).
 * The callers have already turned every line end the client used - CRLF,
 * and a bare CR or LF under bare_newline = normalize - into a line end
 * here, so the stored content never holds a bare CR (SMTP smuggling needs
 * one) and always ends with a LF.
 *
 * Limits, all checked while the content streams through (memory stays
 * flat) and reported only at the end, after the client has sent everything:
 *   message_size_limit     552 5.3.4 (nothing more is written past it)
 *   bare_newline = reject  550 5.5.2 when a bare CR or LF was seen
 *   smtpd_text_line_limit  550 5.5.2 (a long line is refused, never cut)
 *   header_size_limit      552 5.3.4 (the header is refused, never cut)
 *   hopcount_limit         554 5.4.6 (a mail loop)
 * The header ends at the empty line or at the first line that is neither a
 * header field nor a continuation (that line is body, as in Postfix).
 * The 250 comes only after qfw_commit returned 0 (file and directory
 * fsynced); a failed commit is 452 4.3.1 for a full disk or quota, else
 * 451 4.3.0, and leaves nothing behind.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf.h"
#include "log.h"
#include "proto_deliver.h"
#include "proto_trigger.h"
#include "smtpd.h"

static void
reply_queue_error(struct smtpd_session *s, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
	else
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
}

static void
raw_write(struct smtpd_content *c, const void *p, size_t n)
{
	if (c->too_big || n == 0)
		return;
	qfw_write(&c->w, p, n);
	c->written += n;
}

/* The "with" protocol of RFC 3848 / RFC 6531 for the Received: header. */
static const char *
with_protocol(const struct smtpd_session *s)
{
	static char with[16];
	int tls = s->st->tls != NULL, auth = s->sasl_user[0] != '\0';

	/* RFC 3848: ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both); RFC 6531: UTF8SMTP*. */
	snprintf(with, sizeof(with), "%s%s%s",
		 (s->env.flags & DELIVER_F_SMTPUTF8) ? "UTF8SMTP" : smtpd_proto_name(s), tls ? "S" : "",
		 auth ? "A" : "");
	return with;
}

/* tern's Received: header (RFC 5321 4.4), folded Postfix-style, 3 lines. */
static void
write_received(struct smtpd_session *s, struct smtpd_content *c)
{
	char date[64];
	struct buf b;
	struct tm tm;
	time_t now = time(NULL);
	int v6 = strchr(s->ip, ':') != NULL;

	if (localtime_r(&now, &tm) == NULL || strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		log_panic("write_received: cannot format the date");
	buf_init(&b, 4096);
	buf_printf(&b, "Received: from %s (%s [%s%s])\n", s->helo, s->name, v6 ? "IPv6:" : "", s->ip);
	if (s->st->tls != NULL)
		buf_printf(&b, "\t(using %s)\n", s->st->tls_info);
	buf_printf(&b, "\tby %s (tern) with %s id %s", cf.myhostname, with_protocol(s), c->w.qid);
	if (s->env.nrcpt == 1)
		buf_printf(&b, "\n\tfor <%s>; %s\n", s->env.rcpt[0].address, date);
	else
		buf_printf(&b, ";\n\t%s\n", date);
	raw_write(c, b.data, b.len);
	buf_free(&b);
}

int
smtpd_content_begin(struct smtpd_session *s, struct smtpd_content *c)
{
	struct buf client;
	int err;

	memset(c, 0, sizeof(*c));
	c->in_header = 1;
	s->env.arrival = (long long)time(NULL);
	buf_init(&client, 1024);
	if (buf_printf(&client, "%s (%s [%s])", s->helo, s->name, s->ip) < 0)
		log_panic("smtpd_content_begin: client text too long");
	qf_set(&s->env.client, client.data);
	buf_free(&client);

	if (qfw_begin(&c->w, cf.queue_directory, &s->env) < 0) {
		err = errno;
		log_warning("cannot create a queue file in %s: %s", cf.queue_directory, strerror(err));
		reply_queue_error(s, err);
		return -1;
	}
	if (s->sasl_user[0] != '\0')
		log_info("%s: client=%s[%s], sasl_method=%s, sasl_username=%s", c->w.qid, s->name, s->ip,
			 s->sasl_method, s->sasl_user);
	else
		log_info("%s: client=%s[%s]", c->w.qid, s->name, s->ip);
	write_received(s, c);
	return 0;
}

/*
 * What a line in the header section is, decided as its bytes stream in
 * (the line itself is never held): a field "name:" (RFC 5322 2.2, with the
 * obsolete blanks before the colon that Postfix also accepts), the
 * continuation of one, or neither.  Neither ends the header, as in Postfix:
 * it is the first body line, so a message without an empty line after its
 * header, or without a header at all, is not counted whole as header.
 */
enum { LK_START = 0, LK_NAME, LK_NAME_WS, LK_FIELD, LK_CONT, LK_BODY };

static void
classify(struct smtpd_content *c, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && c->line_kind != LK_FIELD && c->line_kind != LK_CONT && c->line_kind != LK_BODY; i++) {
		unsigned char ch = (unsigned char)p[i];
		int blank = ch == ' ' || ch == '\t', bad = ch < 33 || ch > 126;

		switch (c->line_kind) {
		case LK_START:
			c->line_kind = blank ? (c->fields > 0 ? LK_CONT : LK_BODY) : bad || ch == ':' ? LK_BODY : LK_NAME;
			break;
		case LK_NAME:
			c->line_kind = ch == ':' ? LK_FIELD : blank ? LK_NAME_WS : bad ? LK_BODY : LK_NAME;
			break;
		default: /* LK_NAME_WS */
			c->line_kind = ch == ':' ? LK_FIELD : blank ? LK_NAME_WS : LK_BODY;
			break;
		}
		if (c->line_kind == LK_NAME)
			c->name_len++;
	}
}

/* At the end of a line in the header section: count it, or end the header. */
static void
header_line_done(struct smtpd_content *c)
{
	if (c->line_len == 0 || (c->line_kind != LK_FIELD && c->line_kind != LK_CONT)) {
		c->in_header = 0; /* the empty line, or the first body line */
		return;
	}
	/* The limit is on the header as stored: its lines with LF ends. */
	c->header_bytes += c->line_len + 1;
	if (c->header_bytes > (unsigned long long)cf.header_size_limit)
		c->header_big = 1;
	if (c->line_kind == LK_FIELD) {
		c->fields++;
		if (c->name_len == 8 && strncasecmp(c->head, "Received", 8) == 0)
			c->hops++;
	}
}

void
smtpd_content_put(struct smtpd_content *c, const char *p, size_t n, int eol)
{
	unsigned long long limit = (unsigned long long)cf.message_size_limit;
	unsigned long long linemax = (unsigned long long)cf.smtpd_text_line_limit;

	c->size += n + (eol ? 2 : 0);
	if (limit > 0 && c->size > limit)
		c->too_big = 1;
	c->line_len += n;
	/* The limit counts the CRLF (RFC 5321 4.5.3.1.6: 1000 octets with it). */
	if (linemax > 0 && c->line_len + 2 > linemax)
		c->long_line = 1;
	if (c->in_header) {
		size_t take = sizeof(c->head) - c->headlen;

		if (take > n)
			take = n;
		memcpy(c->head + c->headlen, p, take);
		c->headlen += take;
		classify(c, p, n);
	}
	raw_write(c, p, n);
	if (!eol)
		return;
	raw_write(c, "\n", 1);
	if (c->in_header)
		header_line_done(c);
	c->line_len = 0;
	c->headlen = 0;
	c->line_kind = LK_START;
	c->name_len = 0;
}

void
smtpd_content_abort(struct smtpd_content *c)
{
	qfw_abort(&c->w);
}

/* The first limit the content broke, as a complete reply; NULL if none. */
static const char *
content_refusal(const struct smtpd_content *c, char *buf, size_t size)
{
	if (c->too_big)
		return "552 5.3.4 Error: message file too big";
	if (c->bare && strcmp(cf.bare_newline, "reject") == 0)
		return "550 5.5.2 Error: bare <CR> or <LF> received";
	if (c->long_line) {
		snprintf(buf, size, "550 5.5.2 Error: message line longer than %lld octets",
			 cf.smtpd_text_line_limit);
		return buf;
	}
	if (c->header_big)
		return "552 5.3.4 Error: message header size exceeds limit";
	if (c->hops >= (unsigned long long)cf.hopcount_limit)
		return "554 5.4.6 Error: too many hops";
	return NULL;
}

int
smtpd_content_finish(struct smtpd_session *s, struct smtpd_content *c)
{
	char text[128];
	const char *refusal;
	int err;

	s->where = "END-OF-MESSAGE";
	/* A last line without a line end (BDAT) still ends with a LF in the queue. */
	if (c->line_len > 0 || c->pending_cr) {
		if (c->pending_cr)
			c->bare = 1;
		smtpd_content_put(c, "", 0, 1);
	}
	if ((refusal = content_refusal(c, text, sizeof(text))) != NULL) {
		qfw_abort(&c->w);
		log_info("%s: reject: END-OF-MESSAGE from %s[%s]: %s; from=<%s> proto=%s helo=<%s>", c->w.qid,
			 s->name, s->ip, refusal, s->env.sender, smtpd_proto_name(s), s->helo);
		smtpd_reply(s, "%s", refusal);
		return -1;
	}
	if (qfw_commit(&c->w) < 0) {
		err = errno;
		log_warning("%s: queue file commit failed: %s", c->w.qid, strerror(err));
		reply_queue_error(s, err);
		return -1;
	}
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu", c->w.qid, s->env.sender, c->written, s->env.nrcpt);
	smtpd_reply(s, "250 2.0.0 Ok: queued as %s", c->w.qid);
	trigger_send(cf.queue_directory, TRIGGER_INCOMING);
	return 0;
}
