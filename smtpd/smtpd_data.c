/*
 * smtpd_data.c — DATA: from 354 to "queued as".
 *
 * Public: smtpd_data, smtpd_sanitise_helo.
 *
 * The queue file is opened (qfw_begin) before the 354, so a full disk is
 * reported before the client sends the message.  tern's Received: header
 * goes first; then the content, read through the line reader in pieces of
 * at most SMTPD_DATA_PIECE bytes (memory stays flat whatever the line
 * length), dot-unstuffed, and stored with LF line ends.
 *
 * End of data is exactly CR LF "." CR LF: the "." line must end in CRLF
 * and so must the line before it (the DATA command counts as one).  Every
 * other spelling from the SMTP smuggling research (LF.LF, CRLF.LF, LF.CRLF,
 * CR.CR, ...) is content: a "." line with a bare LF is unstuffed like any
 * other line, and a CR that is not part of CRLF stays a data byte, so no
 * such sequence can end or split the message.
 *
 * The size limit (message_size_limit, counted as the client's bytes with
 * CRLF line ends) is enforced while reading: past it nothing more is
 * written, the rest is drained, and the answer is 552 5.3.4.  The 250 comes
 * only after qfw_commit returned 0 (file and directory fsynced); a failed
 * commit is 452 4.3.1 for a full disk or quota, else 451 4.3.0, and leaves
 * nothing behind.  A timeout or a lost connection inside DATA abandons the
 * queue file and ends the session (421 4.4.2 for the timeout).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "log.h"
#include "proto_trigger.h"
#include "smtpd.h"

enum content_end { CONTENT_DOT, CONTENT_EOF, CONTENT_ERROR };

struct data_state {
	struct qf_writer w;
	unsigned long long size;    /* client bytes, CRLF line ends, after unstuffing */
	unsigned long long written; /* bytes put in the queue file's content */
	int too_big;
};

void
smtpd_sanitise_helo(const char *in, char *out, size_t outsize)
{
	size_t i;

	if (outsize == 0)
		return;
	for (i = 0; in[i] != '\0' && i + 1 < outsize; i++) {
		unsigned char c = (unsigned char)in[i];

		/* Printable ASCII without what would end or confuse a header comment. */
		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '\\' || c == '"' || c == ';')
			c = '?';
		out[i] = (char)c;
	}
	out[i] = '\0';
}

static void
content_write(struct data_state *d, const void *p, size_t n)
{
	if (d->too_big)
		return;
	qfw_write(&d->w, p, n);
	d->written += n;
}

/* tern's Received: header (RFC 5321 4.4), folded Postfix-style. */
static void
write_received(struct smtpd_session *s, struct data_state *d)
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
	buf_printf(&b, "\tby %s (tern) with %s id %s", cf.myhostname, smtpd_proto_name(s), d->w.qid);
	if (s->env.nrcpt == 1)
		buf_printf(&b, "\n\tfor <%s>; %s\n", s->env.rcpt[0].address, date);
	else
		buf_printf(&b, ";\n\t%s\n", date);
	content_write(d, b.data, b.len);
	buf_free(&b);
}

/* Read content up to the end-of-data line; see the file comment. */
static enum content_end
read_content(struct smtpd_session *s, struct data_state *d)
{
	unsigned long long limit = cf.message_size_limit > 0 ? (unsigned long long)cf.message_size_limit : 0;
	int at_start = 1;  /* the next piece begins a line */
	int prev_crlf = 1; /* the last complete line ended with CRLF */
	enum lr_ending ending;

	lr_set_flags(&s->lr, LR_SPLIT);
	lr_set_max(&s->lr, SMTPD_DATA_PIECE);
	for (;;) {
		enum lr_result r = lr_getline(&s->lr, &s->line, &ending);
		const char *p = s->line.data;
		size_t n = s->line.len;

		if (r == LR_EOF)
			return CONTENT_EOF;
		if (r != LR_LINE)
			return CONTENT_ERROR;
		if (at_start) {
			if (n == 1 && p[0] == '.' && ending == LR_END_CRLF && prev_crlf)
				return CONTENT_DOT;
			if (n > 0 && p[0] == '.') {
				p++;
				n--;
			}
		}
		d->size += n + (ending != LR_END_NONE ? 2 : 0);
		if (limit > 0 && d->size > limit)
			d->too_big = 1;
		content_write(d, p, n);
		if (ending != LR_END_NONE) {
			content_write(d, "\n", 1);
			prev_crlf = ending == LR_END_CRLF;
		}
		at_start = ending != LR_END_NONE;
	}
}

static void
reply_queue_error(struct smtpd_session *s, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
	else
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
}

/* After the final dot: commit, or say why not. */
static int
finish(struct smtpd_session *s, struct data_state *d)
{
	int err;

	s->where = "END-OF-MESSAGE";
	if (d->too_big) {
		qfw_abort(&d->w);
		log_info("%s: reject: END-OF-MESSAGE from %s[%s]: 552 5.3.4 message size exceeds limit; from=<%s>",
			 d->w.qid, s->name, s->ip, s->env.sender);
		smtpd_reply(s, "552 5.3.4 Error: message file too big");
		return -1;
	}
	if (qfw_commit(&d->w) < 0) {
		err = errno;
		log_warning("%s: queue file commit failed: %s", d->w.qid, strerror(err));
		reply_queue_error(s, err);
		return -1;
	}
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu", d->w.qid, s->env.sender, d->written, s->env.nrcpt);
	smtpd_reply(s, "250 2.0.0 Ok: queued as %s", d->w.qid);
	trigger_send(cf.queue_directory, TRIGGER_INCOMING);
	return 0;
}

int
smtpd_data(struct smtpd_session *s)
{
	struct data_state d;
	struct buf client;
	enum content_end end;
	int rc, err;

	memset(&d, 0, sizeof(d));
	s->env.arrival = (long long)time(NULL);
	buf_init(&client, 1024);
	if (buf_printf(&client, "%s (%s [%s])", s->helo, s->name, s->ip) < 0)
		log_panic("smtpd_data: client text too long");
	qf_set(&s->env.client, client.data);
	buf_free(&client);

	if (qfw_begin(&d.w, cf.queue_directory, &s->env) < 0) {
		err = errno;
		log_warning("cannot create a queue file in %s: %s", cf.queue_directory, strerror(err));
		reply_queue_error(s, err);
		smtpd_txn_reset(s);
		return -1;
	}
	log_info("%s: client=%s[%s]", d.w.qid, s->name, s->ip);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	write_received(s, &d);

	end = read_content(s, &d);
	err = errno;
	if (end == CONTENT_DOT) {
		rc = finish(s, &d);
	} else {
		qfw_abort(&d.w);
		if (end == CONTENT_ERROR && err == ETIMEDOUT) {
			log_info("timeout after DATA from %s[%s]", s->name, s->ip);
			smtpd_reply_421(s, "4.4.2", "Error: timeout exceeded");
		} else {
			log_info("lost connection after DATA from %s[%s]", s->name, s->ip);
		}
		s->done = 1;
		rc = -1;
	}
	smtpd_txn_reset(s);
	return rc;
}
