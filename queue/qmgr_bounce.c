/*
 * qmgr_bounce — delivery status notifications (RFC 3461/3464
 * multipart/report; report-type=delivery-status).
 *
 * A report is an ordinary queued message from the null sender <> to the
 * original envelope sender, written with the same durable writer as any
 * other message.  One report covers every recipient of one message in one
 * list (all failures of a pass, or the delays, or the successes); the
 * recipients are marked final only after it is committed, so a crash in
 * between gives a duplicate report, never none.
 *
 * NOTIFY (RFC 3461 4.1): absent means FAILURE,DELAY; NEVER means nothing;
 * SUCCESS asks for "delivered"/"relayed" reports.  RET=HDRS returns only
 * the headers (delay and success reports always return only headers).
 * Mail from <> gets no report: a failure of it goes once to the postmaster
 * (a double bounce, flagged QF_F_POSTMASTER_NOTICE); a failed double bounce
 * is only logged, so reports never loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "proto_trigger.h"
#include "qmgr.h"
#include "xalloc.h"

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

int notice_wanted(unsigned notify, enum notice_action a)
{
	if (notify & NOTIFY_NEVER)
		return 0;
	switch (a) {
	case ACT_FAILED: return notify == 0 || (notify & NOTIFY_FAILURE);
	case ACT_DELAYED: return notify == 0 || (notify & NOTIFY_DELAY);
	case ACT_DELIVERED:
	case ACT_RELAYED: return (notify & NOTIFY_SUCCESS) != 0;
	}
	return 0;
}

static const char *action_name(enum notice_action a)
{
	switch (a) {
	case ACT_FAILED: return "failed";
	case ACT_DELAYED: return "delayed";
	case ACT_DELIVERED: return "delivered";
	case ACT_RELAYED: return "relayed";
	}
	return "failed";
}

struct report {
	const struct qmsg *m;
	const struct notice *list;
	size_t n;
	enum notice_action kind; /* of list[0]; one report has one kind */
	int postmaster;          /* a double bounce */
	const char *boundary;
};

static void put_headers(struct qf_writer *w, const struct report *rp)
{
	static const char *const subj[] = { "Undelivered Mail Returned to Sender",
					    "Delayed Mail (still being retried)",
					    "Successful Mail Delivery Report", "Successful Mail Delivery Report" };
	char date[64];

	rfc5322_date(time(NULL), date, sizeof(date));
	put(w, "From: MAILER-DAEMON@%s (Mail Delivery System)\n", cf.myhostname);
	if (rp->postmaster)
		put(w, "To: postmaster\nSubject: Postmaster Copy: Undeliverable bounce\n");
	else
		put(w, "To: <%s>\nSubject: %s\n", rp->m->env.sender, subj[rp->kind]);
	put(w, "Date: %s\n", date);
	put(w, "Message-ID: <%s.%s.%lld@%s>\n", rp->m->qid, action_name(rp->kind), (long long)time(NULL), cf.myhostname);
	put(w, "Auto-Submitted: auto-replied\n");
	put(w, "MIME-Version: 1.0\n");
	put(w, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n", rp->boundary);
	put(w, "\nThis is a MIME-encapsulated message.\n\n");
}

static void put_explanation(struct qf_writer *w, const struct report *rp)
{
	size_t i;

	put(w, "--%s\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n",
	    rp->boundary);
	put(w, "This is the mail system at host %s.\n\n", cf.myhostname);
	switch (rp->kind) {
	case ACT_FAILED:
		put(w, "I'm sorry to have to inform you that your message could not\n"
		       "be delivered to one or more recipients. It's attached below.\n\n");
		break;
	case ACT_DELAYED:
		put(w, "Your message could not be delivered for more than %lld hour(s).\n"
		       "It will be retried until it is %lld day(s) old.\n\n",
		    cf.delay_warning_time / 3600, cf.maximal_queue_lifetime / 86400);
		break;
	default:
		put(w, "Your message was successfully delivered to the destination(s)\n"
		       "listed below.\n\n");
	}
	for (i = 0; i < rp->n; i++)
		put(w, "<%s>: %s%s%s%s\n", rp->m->env.rcpt[rp->list[i].idx].address,
		    *rp->list[i].mta ? "host " : "", rp->list[i].mta, *rp->list[i].mta ? " said: " : "",
		    rp->list[i].text);
	put(w, "\n");
}

/* ORCPT as stored ("type;xtext") → "type; decoded" when it decodes to
 * printable text, else as stored. */
static void orcpt_field(const char *orcpt, char *out, size_t size)
{
	const char *semi = strchr(orcpt, ';');
	size_t o;
	const char *p;

	if (!semi || size < 8) {
		snprintf(out, size, "%s", orcpt);
		return;
	}
	o = (size_t)snprintf(out, size, "%.*s; ", (int)(semi - orcpt), orcpt);
	for (p = semi + 1; *p && o + 1 < size; p++) {
		unsigned v;

		/* NOLINTNEXTLINE(cert-err34-c): two hex digits, checked present; any value is then range-checked */
		if (*p == '+' && sscanf(p + 1, "%2X", &v) == 1 && p[1] && p[2]) {
			if (v < 0x20 || v >= 0x7f) {
				snprintf(out, size, "%s", orcpt);
				return;
			}
			out[o++] = (char)v;
			p += 2;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = 0;
}

static void put_status(struct qf_writer *w, const struct report *rp)
{
	const struct qmsg *m = rp->m;
	char date[64], orcpt[QF_ORCPT_MAX + 8];
	size_t i;

	put(w, "--%s\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n", rp->boundary);
	put(w, "Reporting-MTA: dns; %s\nX-Tern-Queue-ID: %s\n", cf.myhostname, m->qid);
	if (*m->env.envid)
		put(w, "Original-Envelope-Id: %s\n", m->env.envid);
	rfc5322_date((time_t)m->env.arrival, date, sizeof(date));
	put(w, "Arrival-Date: %s\n", date);
	for (i = 0; i < rp->n; i++) {
		const struct notice *f = &rp->list[i];
		const struct qf_rcpt *r = &m->env.rcpt[f->idx];

		put(w, "\nFinal-Recipient: rfc822; %s\n", r->address);
		if (r->orcpt) {
			orcpt_field(r->orcpt, orcpt, sizeof(orcpt));
			put(w, "Original-Recipient: %s\n", orcpt);
		}
		put(w, "Action: %s\nStatus: %s\n", action_name(f->action), f->dsn);
		if (*f->mta)
			put(w, "Remote-MTA: dns; %s\nDiagnostic-Code: smtp; %s\n", f->mta, f->text);
		else
			put(w, "Diagnostic-Code: X-tern; %s\n", f->text);
		if (f->action == ACT_DELAYED) {
			rfc5322_date((time_t)(m->env.arrival + cf.maximal_queue_lifetime), date, sizeof(date));
			put(w, "Will-Retry-Until: %s\n", date);
		}
	}
	put(w, "\n");
}

/* Copy the original message (headers only for RET=HDRS and non-failures). */
static int put_original(struct qf_writer *w, const struct report *rp)
{
	const struct qmsg *m = rp->m;
	int hdrs_only = (m->env.flags & DELIVER_F_RET_HDRS) != 0 || rp->kind != ACT_FAILED;
	unsigned long long off = m->env.content_off, left = m->env.content_len;
	char chunk[COPY_CHUNK];
	int prev_nl = 1;
	const char *boundary = rp->boundary;

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

int notice_create(struct qmsg *m, const struct notice *all, size_t nall)
{
	struct qf_envelope env;
	struct qf_writer w;
	struct report rp;
	struct notice *list;
	char boundary[96];
	size_t i, n = 0;
	int rc = -1;

	memset(&rp, 0, sizeof(rp));
	rp.m = m;
	rp.kind = all[0].action;
	if (!*m->env.sender) {
		/* Nobody to tell but the postmaster, once, and only of failures. */
		for (i = 0; i < nall; i++)
			if (all[i].action == ACT_FAILED)
				log_warning("%s: undeliverable mail from <>%s: to=<%s>, dsn=%s (%s)", m->qid,
					    (m->env.flags & QF_F_POSTMASTER_NOTICE) ? " discarded"
										   : ", postmaster notified",
					    m->env.rcpt[all[i].idx].address, all[i].dsn, all[i].text);
		if (rp.kind != ACT_FAILED || (m->env.flags & QF_F_POSTMASTER_NOTICE))
			return 0;
		rp.postmaster = 1;
	}
	list = xcalloc(nall, sizeof(*list));
	for (i = 0; i < nall; i++)
		if (rp.postmaster || notice_wanted(m->env.rcpt[all[i].idx].notify, all[i].action))
			list[n++] = all[i];
	if (n == 0) {
		free(list);
		return 0; /* NOTIFY said no */
	}
	rp.list = list;
	rp.n = n;
	qf_envelope_init(&env);
	env.arrival = time(NULL);
	if (rp.postmaster)
		env.flags = QF_F_POSTMASTER_NOTICE;
	qf_envelope_add_rcpt(&env, rp.postmaster ? "postmaster" : m->env.sender, NULL, 0);
	if (qfw_begin(&w, cf.queue_directory, &env) < 0) {
		log_warning("%s: cannot create the %s notice: %s", m->qid, action_name(rp.kind), strerror(errno));
		goto out;
	}
	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", m->qid, (long long)env.arrival, cf.myhostname);
	rp.boundary = boundary;
	put_headers(&w, &rp);
	put_explanation(&w, &rp);
	put_status(&w, &rp);
	if (put_original(&w, &rp) < 0 || qfw_commit(&w) < 0) {
		log_warning("%s: cannot queue the %s notice: %s", m->qid, action_name(rp.kind), strerror(errno));
		qfw_abort(&w);
		goto out;
	}
	log_info("%s: %s: %s", m->qid,
		 rp.postmaster ? "postmaster non-delivery notification"
		 : rp.kind == ACT_FAILED ? "sender non-delivery notification"
		 : rp.kind == ACT_DELAYED ? "sender delay notification"
					  : "sender delivery status notification",
		 env.qid);
	qmgr_want_incoming();
	rc = 0;
out:
	qf_envelope_free(&env);
	free(list);
	return rc;
}
