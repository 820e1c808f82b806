/*
 * qmgr_bounce — non-delivery reports (RFC 3464 multipart/report).
 *
 * A bounce is an ordinary queued message from the null sender <> to the
 * original envelope sender, written with the same durable writer as any
 * other message; the failed recipients are marked bounced only after it is
 * committed, so a crash in between gives a duplicate report, never none.
 * Mail from <> is never bounced (no bounce loops); such failures are logged.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "proto_trigger.h"
#include "qmgr.h"

#define COPY_CHUNK 65536

static void rfc5322_date(time_t t, char *out, size_t size)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static void put(struct qf_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct qf_writer *w, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	qfw_write(w, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void put_headers(struct qf_writer *w, const struct qmsg *m, const char *boundary)
{
	char date[64];

	rfc5322_date(time(NULL), date, sizeof(date));
	put(w, "From: MAILER-DAEMON@%s (Mail Delivery System)\n", cf.myhostname);
	put(w, "To: <%s>\n", m->env.sender);
	put(w, "Subject: Undelivered Mail Returned to Sender\n");
	put(w, "Date: %s\n", date);
	put(w, "Message-ID: <%s.bounce@%s>\n", m->qid, cf.myhostname);
	put(w, "Auto-Submitted: auto-replied\n");
	put(w, "MIME-Version: 1.0\n");
	put(w, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n", boundary);
	put(w, "\nThis is a MIME-encapsulated message.\n\n");
}

static void put_explanation(struct qf_writer *w, const struct qmsg *m, const char *boundary)
{
	size_t i;

	put(w, "--%s\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n", boundary);
	put(w, "This is the mail system at host %s.\n\n", cf.myhostname);
	put(w, "I'm sorry to have to inform you that your message could not\n"
	       "be delivered to one or more recipients. It's attached below.\n\n");
	for (i = 0; i < m->nfail; i++)
		put(w, "<%s>: %s\n", m->env.rcpt[m->fail[i].idx].address, m->fail[i].text);
	put(w, "\n");
}

static void put_status(struct qf_writer *w, const struct qmsg *m, const char *boundary)
{
	char date[64];
	size_t i;

	put(w, "--%s\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n", boundary);
	put(w, "Reporting-MTA: dns; %s\nX-Tern-Queue-ID: %s\n", cf.myhostname, m->qid);
	if (*m->env.envid)
		put(w, "Original-Envelope-Id: %s\n", m->env.envid);
	rfc5322_date((time_t)m->env.arrival, date, sizeof(date));
	put(w, "Arrival-Date: %s\n", date);
	for (i = 0; i < m->nfail; i++) {
		const struct failure *f = &m->fail[i];
		const struct qf_rcpt *r = &m->env.rcpt[f->idx];

		put(w, "\nFinal-Recipient: rfc822; %s\n", r->address);
		if (r->orcpt)
			put(w, "Original-Recipient: %s\n", r->orcpt);
		put(w, "Action: failed\nStatus: %s\nDiagnostic-Code: X-tern; %s\n", f->dsn, f->text);
	}
	put(w, "\n");
}

/* Copy the original message (headers only for RET=HDRS). */
static int put_original(struct qf_writer *w, const struct qmsg *m, const char *boundary)
{
	int hdrs_only = (m->env.flags & DELIVER_F_RET_HDRS) != 0;
	unsigned long long off = m->env.content_off, left = m->env.content_len;
	char chunk[COPY_CHUNK];
	int prev_nl = 1;

	put(w, "--%s\nContent-Description: %s\nContent-Type: %s\n\n", boundary,
	    hdrs_only ? "Undelivered Message Headers" : "Undelivered Message",
	    hdrs_only ? "text/rfc822-headers" : "message/rfc822");
	while (left > 0) {
		size_t want = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		ssize_t n = pread(m->fd, chunk, want, (off_t)off);
		size_t use = n > 0 ? (size_t)n : 0;

		if (n <= 0)
			return -1;
		if (hdrs_only) {
			/* Stop at the first empty line. */
			size_t k;

			for (k = 0; k < use; k++) {
				if (chunk[k] == '\n' && prev_nl) {
					use = k;
					left = (unsigned long long)use;
					break;
				}
				prev_nl = chunk[k] == '\n';
			}
		}
		qfw_write(w, chunk, use);
		off += (unsigned long long)n;
		left -= left < (unsigned long long)n ? left : (unsigned long long)n;
	}
	put(w, "\n--%s--\n", boundary);
	return 0;
}

int bounce_create(struct qmsg *m)
{
	struct qf_envelope env;
	struct qf_writer w;
	char boundary[64];
	size_t i;

	if (!*m->env.sender) {
		for (i = 0; i < m->nfail; i++)
			log_warning("%s: undeliverable mail from <> discarded: to=<%s>, dsn=%s (%s)", m->qid,
				    m->env.rcpt[m->fail[i].idx].address, m->fail[i].dsn, m->fail[i].text);
		return 0;
	}
	qf_envelope_init(&env);
	env.arrival = time(NULL);
	qf_envelope_add_rcpt(&env, m->env.sender, NULL, 0);
	if (qfw_begin(&w, cf.queue_directory, &env) < 0) {
		log_warning("%s: cannot create the bounce: %s", m->qid, strerror(errno));
		qf_envelope_free(&env);
		return -1;
	}
	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", m->qid, (long long)env.arrival, "tern");
	put_headers(&w, m, boundary);
	put_explanation(&w, m, boundary);
	put_status(&w, m, boundary);
	if (put_original(&w, m, boundary) < 0 || qfw_commit(&w) < 0) {
		log_warning("%s: cannot queue the bounce: %s", m->qid, strerror(errno));
		qfw_abort(&w);
		qf_envelope_free(&env);
		return -1;
	}
	log_info("%s: sender non-delivery notification: %s", m->qid, env.qid);
	qf_envelope_free(&env);
	qmgr_want_incoming();
	return 0;
}
