/*
 * send_smtp — one SMTP client session on a connected socket.
 *
 * greeting → EHLO (HELO when EHLO gets a 5xx) → MAIL FROM → RCPT TO per
 * open recipient → DATA → content → "." → QUIT.  With PIPELINING offered,
 * MAIL, every RCPT and DATA go out in one write and the replies are read
 * in order.  BODY=8BITMIME is added when the message is 8-bit and the
 * peer offers it; an SMTPUTF8 message to a peer without SMTPUTF8 bounces
 * (5.6.7).
 *
 * Recipient states (send.h): a recipient is DONE once a server gave it a
 * final answer (RCPT 4xx/5xx, or the reply to the end of data, or a 5xx to
 * MAIL/HELO/DATA).  When the session breaks before the content was
 * complete (connection refused/lost, timeout, malformed reply, 421, 4xx
 * greeting/EHLO/MAIL) the open recipients go back to PENDING with a
 * tentative temporary result, so the caller may try the next address; the
 * peer cannot have accepted the message.  After "." was sent a lost reply
 * defers the accepted recipients for good (they may have been delivered).
 *
 * Results carry the peer's reply: "host[ip] said: 550 5.1.1 ... (in reply
 * to RCPT TO command)"; sent recipients carry the reply to ".".
 *
 * Public: send_smtp_session.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "send.h"

struct session {
	struct send_attempt *a;
	struct smtp_conn c;
	struct smtp_reply rep;
	int pipelining, eightbit, smtputf8;
};

static int reply_timeout_ms(void)
{
	long long s = cf.smtp_reply_timeout;
	if (s <= 0)
		s = 300;
	return s > INT_MAX / 1000 ? INT_MAX : (int)(s * 1000);
}

static void vset(struct deliver_rcpt *rc, enum deliver_status st, const char *dsn, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

static void vset(struct deliver_rcpt *rc, enum deliver_status st, const char *dsn, const char *fmt, va_list ap)
{
	char text[DELIVER_MAX_TEXT];
	vsnprintf(text, sizeof(text), fmt, ap);
	deliver_set_result(rc, st, dsn, "%s", text);
}

/* A final result for recipient i, logged now. */
static void rcpt_done(struct session *s, size_t i, enum deliver_status st, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void rcpt_done(struct session *s, size_t i, enum deliver_status st, const char *dsn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(&s->a->r->rcpt[i], st, dsn, fmt, ap);
	va_end(ap);
	s->a->state[i] = RCPT_DONE;
	send_log_rcpt(s->a->r, &s->a->r->rcpt[i], s->a->relay);
}

/* The session broke before the content was complete: every open recipient
 * is PENDING again with this tentative temporary result. */
static void session_fail(struct session *s, const char *dsn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void session_fail(struct session *s, const char *dsn, const char *fmt, ...)
{
	for (size_t i = 0; i < s->a->r->nrcpt; i++) {
		if (s->a->state[i] == RCPT_DONE)
			continue;
		va_list ap;
		va_start(ap, fmt);
		s->a->state[i] = RCPT_PENDING;
		vset(&s->a->r->rcpt[i], DELIVER_TEMP, dsn, fmt, ap);
		va_end(ap);
	}
}

static void read_failed(struct session *s, enum smtp_read_result rr, const char *stage)
{
	if (rr == SMTP_REPLY_MALFORMED)
		session_fail(s, "4.5.0", "%s sent a malformed reply %s", s->a->peer, stage);
	else if (rr == SMTP_REPLY_TIMEOUT)
		session_fail(s, "4.4.2", "conversation with %s timed out %s", s->a->peer, stage);
	else
		session_fail(s, "4.4.2", "lost connection with %s %s", s->a->peer, stage);
}

static void write_failed(struct session *s, const char *stage)
{
	if (errno == ETIMEDOUT)
		session_fail(s, "4.4.2", "conversation with %s timed out %s", s->a->peer, stage);
	else
		session_fail(s, "4.4.2", "lost connection with %s %s", s->a->peer, stage);
}

/* Status, DSN and "host said: ..." text of the current reply. */
static enum deliver_status reply_status(const struct session *s, char *dsn, size_t dsnsize)
{
	int cls = s->rep.code / 100;
	enum deliver_status st = cls == 2 ? DELIVER_OK : cls == 4 ? DELIVER_TEMP : DELIVER_PERM;
	if (s->rep.dsn[0])
		snprintf(dsn, dsnsize, "%s", s->rep.dsn);
	else
		snprintf(dsn, dsnsize, "%d.0.0", cls == 3 ? 5 : cls);
	return st;
}

static void said(const struct session *s, char *text, size_t size)
{
	smtp_reply_text(&s->rep, text, size);
}

/* Each open recipient gets this reply as its final result. */
static void open_done_by_reply(struct session *s, enum send_rcpt_state which, const char *cmd)
{
	char dsn[16], text[800];
	enum deliver_status st = reply_status(s, dsn, sizeof(dsn));
	if (st == DELIVER_OK) { /* a 3xx where it makes no sense */
		st = DELIVER_PERM;
		snprintf(dsn, sizeof(dsn), "5.5.0");
	}
	said(s, text, sizeof(text));
	for (size_t i = 0; i < s->a->r->nrcpt; i++)
		if (s->a->state[i] == which)
			rcpt_done(s, i, st, dsn, "%s said: %s (in reply to %s command)", s->a->peer, text, cmd);
}

/* A 4xx (or a non-2xx that must be treated as one) before the content: the
 * peer did not take the message, the next address may. */
static void fail_by_reply(struct session *s, const char *cmd)
{
	char dsn[16], text[800];
	reply_status(s, dsn, sizeof(dsn));
	dsn[0] = '4';
	said(s, text, sizeof(text));
	session_fail(s, dsn, "%s said: %s (in reply to %s)", s->a->peer, text, cmd);
}

static void quit(struct session *s)
{
	if (smtp_conn_put(&s->c, "QUIT\r\n", 6) < 0)
		return;
	int saved = s->c.timeout_ms;
	if (s->c.timeout_ms > SEND_QUIT_TIMEOUT_MS)
		s->c.timeout_ms = SEND_QUIT_TIMEOUT_MS;
	(void)smtp_read_reply(&s->c, &s->rep);
	s->c.timeout_ms = saved;
}

/* EHLO, or HELO after a 5xx.  0 to go on, -1 when the session is over. */
static int hello(struct session *s)
{
	const char *me = cf.myhostname && cf.myhostname[0] ? cf.myhostname : "localhost";
	enum smtp_read_result rr;

	if (smtp_conn_printf(&s->c, "EHLO %s\r\n", me) < 0) {
		write_failed(s, "while performing the EHLO handshake");
		return -1;
	}
	if ((rr = smtp_read_reply(&s->c, &s->rep)) != SMTP_REPLY_OK) {
		read_failed(s, rr, "while performing the EHLO handshake");
		return -1;
	}
	if (s->rep.code / 100 == 2) {
		s->pipelining = smtp_reply_has_ext(&s->rep, "PIPELINING");
		s->eightbit = smtp_reply_has_ext(&s->rep, "8BITMIME");
		s->smtputf8 = smtp_reply_has_ext(&s->rep, "SMTPUTF8");
		return 0;
	}
	if (s->rep.code / 100 != 5) {
		fail_by_reply(s, "EHLO command");
		if (s->rep.code != 421)
			quit(s);
		return -1;
	}
	if (smtp_conn_printf(&s->c, "HELO %s\r\n", me) < 0) {
		write_failed(s, "while performing the HELO handshake");
		return -1;
	}
	if ((rr = smtp_read_reply(&s->c, &s->rep)) != SMTP_REPLY_OK) {
		read_failed(s, rr, "while performing the HELO handshake");
		return -1;
	}
	if (s->rep.code / 100 == 2)
		return 0;
	if (s->rep.code / 100 == 5) {
		open_done_by_reply(s, RCPT_PENDING, "HELO");
		quit(s);
	} else {
		fail_by_reply(s, "HELO command");
		if (s->rep.code != 421)
			quit(s);
	}
	return -1;
}

/* Queue the envelope commands: MAIL, and with pipelining every RCPT and DATA. */
static int put_envelope(struct session *s)
{
	const struct deliver_request *r = s->a->r;
	const char *body = (r->flags & DELIVER_F_8BITMIME) && s->eightbit ? " BODY=8BITMIME" : "";
	const char *utf8 = (r->flags & DELIVER_F_SMTPUTF8) && s->smtputf8 ? " SMTPUTF8" : "";

	if (smtp_conn_printf(&s->c, "MAIL FROM:<%s>%s%s\r\n", r->sender, body, utf8) < 0)
		return -1;
	if (!s->pipelining)
		return 0;
	for (size_t i = 0; i < r->nrcpt; i++)
		if (s->a->state[i] == RCPT_PENDING && smtp_conn_printf(&s->c, "RCPT TO:<%s>\r\n", r->rcpt[i].address) < 0)
			return -1;
	return smtp_conn_put(&s->c, "DATA\r\n", 6);
}

/* After a failed MAIL with pipelining the RCPT and DATA replies still come. */
static int drain(struct session *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (smtp_read_reply(&s->c, &s->rep) != SMTP_REPLY_OK)
			return -1;
	return 0;
}

/* RCPT replies.  Returns the number accepted, or -1 when the session is over. */
static long rcpts(struct session *s)
{
	struct deliver_request *r = s->a->r;
	long accepted = 0;
	enum smtp_read_result rr;

	for (size_t i = 0; i < r->nrcpt; i++) {
		if (s->a->state[i] != RCPT_PENDING)
			continue;
		if (!s->pipelining && smtp_conn_printf(&s->c, "RCPT TO:<%s>\r\n", r->rcpt[i].address) < 0) {
			write_failed(s, "while sending RCPT TO");
			return -1;
		}
		if ((rr = smtp_read_reply(&s->c, &s->rep)) != SMTP_REPLY_OK) {
			read_failed(s, rr, "while sending RCPT TO");
			return -1;
		}
		if (s->rep.code / 100 == 2) {
			s->a->state[i] = RCPT_ACCEPTED;
			accepted++;
		} else if (s->rep.code == 421) {
			fail_by_reply(s, "RCPT TO command");
			return -1;
		} else {
			char dsn[16], text[800];
			enum deliver_status st = reply_status(s, dsn, sizeof(dsn));
			if (st == DELIVER_OK) {
				st = DELIVER_PERM;
				snprintf(dsn, sizeof(dsn), "5.5.0");
			}
			said(s, text, sizeof(text));
			rcpt_done(s, i, st, dsn, "%s said: %s (in reply to RCPT TO command)", s->a->peer, text);
		}
	}
	return accepted;
}

/* Send the content and read the reply to ".".  0 to QUIT, -1 to close. */
static int content(struct session *s)
{
	struct send_attempt *a = s->a;
	enum smtp_read_result rr;

	if (smtp_send_content(&s->c, a->msgfd, a->r->offset, a->r->length) < 0) {
		if (errno == EIO || errno == EOVERFLOW)
			session_fail(s, "4.3.0", "error reading the queue file");
		else
			write_failed(s, "while sending message body");
		return -1; /* closing the connection aborts the transaction */
	}
	if ((rr = smtp_read_reply(&s->c, &s->rep)) != SMTP_REPLY_OK) {
		/* The peer may have the message: no other address is tried. */
		for (size_t i = 0; i < a->r->nrcpt; i++)
			if (a->state[i] == RCPT_ACCEPTED)
				rcpt_done(s, i, DELIVER_TEMP, rr == SMTP_REPLY_MALFORMED ? "4.5.0" : "4.4.2",
					  "%s with %s while sending end of data -- message may be sent more than once",
					  rr == SMTP_REPLY_MALFORMED ? "malformed reply"
					  : rr == SMTP_REPLY_TIMEOUT ? "conversation timed out" : "lost connection",
					  a->peer);
		return -1;
	}
	if (s->rep.code / 100 == 2) {
		char dsn[16], text[800];
		reply_status(s, dsn, sizeof(dsn));
		said(s, text, sizeof(text));
		for (size_t i = 0; i < a->r->nrcpt; i++)
			if (a->state[i] == RCPT_ACCEPTED)
				rcpt_done(s, i, DELIVER_OK, dsn, "%s", text);
		return 0;
	}
	open_done_by_reply(s, RCPT_ACCEPTED, "end of DATA");
	return s->rep.code == 421 ? -1 : 0;
}

/* MAIL, RCPT, DATA, content.  0 to QUIT, -1 to just close. */
static int transaction(struct session *s)
{
	struct deliver_request *r = s->a->r;
	size_t open = 0;
	enum smtp_read_result rr;

	for (size_t i = 0; i < r->nrcpt; i++)
		if (s->a->state[i] == RCPT_PENDING)
			open++;
	if (open == 0)
		return 0;
	if (put_envelope(s) < 0) {
		write_failed(s, "while sending MAIL FROM");
		return -1;
	}
	if ((rr = smtp_read_reply(&s->c, &s->rep)) != SMTP_REPLY_OK) {
		read_failed(s, rr, "while sending MAIL FROM");
		return -1;
	}
	if (s->rep.code / 100 != 2) {
		if (s->rep.code / 100 == 5)
			open_done_by_reply(s, RCPT_PENDING, "MAIL FROM");
		else
			fail_by_reply(s, "MAIL FROM command");
		if (s->rep.code == 421)
			return -1;
		return s->pipelining ? drain(s, open + 1) : 0;
	}
	long accepted = rcpts(s);
	if (accepted < 0)
		return -1;
	if (!s->pipelining) {
		if (accepted == 0)
			return 0;
		if (smtp_conn_put(&s->c, "DATA\r\n", 6) < 0) {
			write_failed(s, "while sending DATA");
			return -1;
		}
	}
	if ((rr = smtp_read_reply(&s->c, &s->rep)) != SMTP_REPLY_OK) {
		read_failed(s, rr, "while sending DATA");
		return -1;
	}
	if (s->rep.code != 354) {
		if (accepted == 0)
			return 0; /* the expected 503/554 after every RCPT failed */
		if (s->rep.code / 100 == 4) {
			fail_by_reply(s, "DATA command");
			return s->rep.code == 421 ? -1 : 0;
		}
		open_done_by_reply(s, RCPT_ACCEPTED, "DATA");
		return 0;
	}
	if (accepted == 0)
		return -1; /* 354 without a recipient: drop the connection rather than send */
	return content(s);
}

void send_smtp_session(struct send_attempt *a, int fd)
{
	struct session s;
	enum smtp_read_result rr;

	memset(&s, 0, sizeof(s));
	s.a = a;
	smtp_conn_init(&s.c, fd, reply_timeout_ms());
	smtp_reply_init(&s.rep);

	if ((rr = smtp_read_reply(&s.c, &s.rep)) != SMTP_REPLY_OK) {
		read_failed(&s, rr, "while receiving the initial server greeting");
	} else if (s.rep.code != 220) {
		fail_by_reply(&s, "initial greeting");
		if (s.rep.code != 421)
			quit(&s);
	} else if (hello(&s) == 0) {
		if ((a->r->flags & DELIVER_F_SMTPUTF8) && !s.smtputf8) {
			for (size_t i = 0; i < a->r->nrcpt; i++)
				if (a->state[i] != RCPT_DONE)
					rcpt_done(&s, i, DELIVER_PERM, "5.6.7",
						  "SMTPUTF8 is required, but was not offered by host %s", a->peer);
			quit(&s);
		} else if (transaction(&s) == 0) {
			quit(&s);
		}
	}
	smtp_reply_free(&s.rep);
	smtp_conn_free(&s.c);
}
