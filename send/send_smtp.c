/*
 * send_smtp — SMTP client transactions on a connected socket.
 *
 * A new connection: greeting → EHLO (HELO when EHLO gets a 5xx).  Then per
 * message: MAIL FROM → RCPT TO per open recipient → DATA → content → ".".
 * With PIPELINING offered, MAIL, every RCPT and DATA go out in one write
 * and the replies are read in order.  Afterwards the caller (send_deliver.c)
 * either QUITs or keeps the connection for the next message, with RSET only
 * when a transaction was left open (no reply to "." yet: MAIL or every RCPT
 * refused); a completed transaction needs none, which saves a round trip
 * per message.  A kept connection that was closed, or sent anything while
 * idle, is dropped before use; one that died unnoticed fails at the next
 * MAIL; either way the request goes on over a new one (send_deliver.c).
 *
 * Extensions: SIZE (MAIL ... SIZE=n; a message larger than the peer's
 * advertised limit bounces 5.3.4 without being sent); BODY=8BITMIME when
 * the message is 8-bit and the peer offers it, and quoted-printable
 * conversion (send_mime.c) when it does not; SMTPUTF8 mail to a peer
 * without SMTPUTF8 bounces (5.6.7); DSN: RET, ENVID, NOTIFY and ORCPT are
 * passed on when the peer offers DSN, and when it does not, a recipient
 * that asked for NOTIFY=SUCCESS is reported "relayed" (RFC 3461 4.1)
 * instead of delivered.
 *
 * Timeouts (RFC 5321 4.5.3.2, Postfix names): smtp_helo_timeout for the
 * greeting and EHLO/HELO, smtp_mail_timeout, smtp_rcpt_timeout,
 * smtp_data_init_timeout (DATA), smtp_data_xfer_timeout (each write of
 * content), smtp_data_done_timeout (reply to "."), smtp_quit_timeout,
 * smtp_rset_timeout.
 *
 * Recipient states (send.h): a recipient is DONE once a server gave it a
 * final answer (RCPT 4xx/5xx, or the reply to the end of data, or a 5xx to
 * MAIL/HELO/DATA).  When the session breaks before the content was
 * complete (connection lost, timeout, malformed reply, 421, 4xx
 * greeting/EHLO/MAIL) the open recipients go back to PENDING with a
 * tentative temporary result, so the caller may try the next address; the
 * peer cannot have accepted the message.  After "." was sent a lost reply
 * defers the accepted recipients for good (they may have been delivered).
 * A 421, at any stage, means the server is closing: nothing more is sent,
 * not even QUIT.
 *
 * Results carry the peer's reply: "host[ip] said: 550 5.1.1 ... (in reply
 * to RCPT TO command)"; sent recipients carry the reply to ".", and every
 * result from a server names it in `mta`.
 *
 * Public: send_session_init/free/quit/rset, send_smtp_session.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "saslcodec.h"
#include "send.h"
#include "sock.h"
#include "strutil.h"

/* The session being run: the connection plus the request. */
struct run {
	struct send_attempt *a;
	struct smtp_session *s;
};

static int ms(long long seconds)
{
	if (seconds <= 0)
		seconds = 300;
	return seconds > INT_MAX / 1000 ? INT_MAX : (int)(seconds * 1000);
}

void send_session_init(struct smtp_session *s, int fd, const struct send_target *t, const char *nexthop)
{
	char ip[INET6_ADDRSTRLEN + 8];
	int port = 0;
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	smtp_conn_init(&s->c, fd, ms(cf.smtp_helo_timeout));
	smtp_reply_init(&s->rep);
	sock_addr_text((const struct sockaddr *)&t->sa, t->salen, ip, sizeof(ip), &port);
	snprintf(s->name, sizeof(s->name), "%s", t->name);
	snprintf(s->peer, sizeof(s->peer), "%s[%s]", t->name, ip);
	snprintf(s->relay, sizeof(s->relay), "%s[%s]:%d", t->name, ip, port);
	snprintf(s->nexthop, sizeof(s->nexthop), "%s", nexthop);
	s->opened_ms = clock_ms();
}

void send_session_free(struct smtp_session *s)
{
	send_tls_end(s);
	smtp_reply_free(&s->rep);
	smtp_conn_free(&s->c);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

void send_session_quit(struct smtp_session *s)
{
	s->c.timeout_ms = ms(cf.smtp_quit_timeout);
	if (smtp_conn_printf(&s->c, "QUIT\r\n") == 0)
		(void)smtp_read_reply(&s->c, &s->rep);
	send_session_free(s);
}

int send_session_rset(struct smtp_session *s)
{
	s->c.timeout_ms = ms(cf.smtp_rset_timeout);
	if (smtp_conn_printf(&s->c, "RSET\r\n") < 0 || smtp_read_reply(&s->c, &s->rep) != SMTP_REPLY_OK)
		return -1;
	return s->rep.code / 100 == 2 ? 0 : -1;
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
static void rcpt_done(struct run *x, size_t i, enum deliver_status st, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void rcpt_done(struct run *x, size_t i, enum deliver_status st, const char *dsn, const char *fmt, ...)
{
	va_list ap;
	struct deliver_rcpt *rc = &x->a->r->rcpt[i];
	va_start(ap, fmt);
	vset(rc, st, dsn, fmt, ap);
	va_end(ap);
	snprintf(rc->mta, sizeof(rc->mta), "%s", x->s->name);
	x->a->state[i] = RCPT_DONE;
	send_log_rcpt(x->a, rc);
}

/* The session broke before the content was complete: every open recipient
 * is PENDING again with this tentative temporary result. */
static void session_fail(struct run *x, const char *dsn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void session_fail(struct run *x, const char *dsn, const char *fmt, ...)
{
	for (size_t i = 0; i < x->a->r->nrcpt; i++) {
		if (x->a->state[i] == RCPT_DONE)
			continue;
		va_list ap;
		va_start(ap, fmt);
		x->a->state[i] = RCPT_PENDING;
		vset(&x->a->r->rcpt[i], DELIVER_TEMP, dsn, fmt, ap);
		va_end(ap);
		snprintf(x->a->r->rcpt[i].mta, sizeof(x->a->r->rcpt[i].mta), "%s", x->s->name);
	}
}

static void read_failed(struct run *x, enum smtp_read_result rr, const char *stage)
{
	if (rr == SMTP_REPLY_MALFORMED)
		session_fail(x, "4.5.0", "%s sent a malformed reply %s", x->s->peer, stage);
	else if (rr == SMTP_REPLY_TIMEOUT)
		session_fail(x, "4.4.2", "conversation with %s timed out %s", x->s->peer, stage);
	else
		session_fail(x, "4.4.2", "lost connection with %s %s", x->s->peer, stage);
}

static void write_failed(struct run *x, const char *stage)
{
	if (errno == ETIMEDOUT)
		session_fail(x, "4.4.2", "conversation with %s timed out %s", x->s->peer, stage);
	else
		session_fail(x, "4.4.2", "lost connection with %s %s", x->s->peer, stage);
}

/* Status and DSN of the current reply. */
static enum deliver_status reply_status(const struct run *x, char *dsn, size_t dsnsize)
{
	int cls = x->s->rep.code / 100;
	enum deliver_status st = cls == 2 ? DELIVER_OK : cls == 4 ? DELIVER_TEMP : DELIVER_PERM;
	if (x->s->rep.dsn[0])
		snprintf(dsn, dsnsize, "%s", x->s->rep.dsn);
	else
		snprintf(dsn, dsnsize, "%d.0.0", cls == 3 ? 5 : cls);
	return st;
}

static void said(const struct run *x, char *text, size_t size)
{
	smtp_reply_text(&x->s->rep, text, size);
}

/* Each recipient in state `which` gets this reply as its final result. */
static void open_done_by_reply(struct run *x, enum send_rcpt_state which, const char *cmd)
{
	char dsn[16], text[800];
	enum deliver_status st = reply_status(x, dsn, sizeof(dsn));
	if (st == DELIVER_OK) { /* a 3xx where it makes no sense */
		st = DELIVER_PERM;
		snprintf(dsn, sizeof(dsn), "5.5.0");
	}
	said(x, text, sizeof(text));
	for (size_t i = 0; i < x->a->r->nrcpt; i++)
		if (x->a->state[i] == which)
			rcpt_done(x, i, st, dsn, "%s said: %s (in reply to %s command)", x->s->peer, text, cmd);
}

/* A 4xx (or a non-2xx that must be treated as one) before the content: the
 * peer did not take the message, the next address may. */
static void fail_by_reply(struct run *x, const char *cmd)
{
	char dsn[16], text[800];
	reply_status(x, dsn, sizeof(dsn));
	dsn[0] = '4';
	said(x, text, sizeof(text));
	session_fail(x, dsn, "%s said: %s (in reply to %s)", x->s->peer, text, cmd);
}

static void quit(struct run *x)
{
	x->s->c.timeout_ms = ms(cf.smtp_quit_timeout);
	if (smtp_conn_printf(&x->s->c, "QUIT\r\n") == 0)
		(void)smtp_read_reply(&x->s->c, &x->s->rep);
}

/* Read one reply within the stage's timeout. */
static enum smtp_read_result get_reply(struct run *x, long long timeout_s)
{
	x->s->c.timeout_ms = ms(timeout_s);
	return smtp_read_reply(&x->s->c, &x->s->rep);
}

static void note_extensions(struct smtp_session *s)
{
	char v[32];
	s->pipelining = smtp_reply_has_ext(&s->rep, "PIPELINING");
	s->eightbit = smtp_reply_has_ext(&s->rep, "8BITMIME");
	s->smtputf8 = smtp_reply_has_ext(&s->rep, "SMTPUTF8");
	s->dsn = smtp_reply_has_ext(&s->rep, "DSN");
	s->size_offered = smtp_reply_ext_param(&s->rep, "SIZE", v, sizeof(v));
	unsigned long long lim = 0;
	if (s->size_offered && v[0] && parse_ull(v, ULLONG_MAX, &lim) == 0)
		s->size_limit = lim;
}

/*
 * After a 2xx EHLO: STARTTLS per the destination's level, EHLO again inside
 * TLS, then AUTH when smtp_sasl_password_maps has credentials for the
 * nexthop (only inside TLS).  0 to go on, -1 when the session is over.
 */
static int secure(struct run *x, const char *me)
{
	struct smtp_session *s = x->s;
	const char *level = send_tls_level(s->nexthop);
	int required = strcmp(level, "encrypt") == 0 || strcmp(level, "verify") == 0;
	char why[700], user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	enum smtp_read_result rr;
	int r;

	if (s->tls == NULL && strcmp(level, "none") != 0 && !s->no_tls) {
		if (!smtp_reply_has_ext(&s->rep, "STARTTLS")) {
			if (required) {
				session_fail(x, "4.7.4", "TLS is required, but was not offered by host %s", s->peer);
				quit(x);
				return -1;
			}
		} else {
			if (smtp_conn_printf(&s->c, "STARTTLS\r\n") < 0) {
				write_failed(x, "while sending STARTTLS");
				return -1;
			}
			if ((rr = get_reply(x, cf.smtp_helo_timeout)) != SMTP_REPLY_OK) {
				read_failed(x, rr, "in reply to STARTTLS");
				return -1;
			}
			if (s->rep.code == 421) { /* closing: nothing more may be sent */
				fail_by_reply(x, "STARTTLS command");
				return -1;
			}
			if (s->rep.code != 220) {
				if (required) {
					fail_by_reply(x, "STARTTLS command");
					session_fail(x, "4.7.5", "TLS is required, but host %s refused to start TLS", s->peer);
					quit(x);
					return -1;
				}
				/* may: go on in plaintext (the reply was 454 or so). */
			} else {
				/* D.24: anything after the 220 was sent in plaintext; drop it. */
				if (lr_pending(&s->c.lr) > 0) {
					log_warning("%s: %zu bytes of plaintext after the STARTTLS reply discarded", s->relay,
						    lr_pending(&s->c.lr));
					lr_discard_pending(&s->c.lr);
				}
				/* The certificate must name the MX host, or the nexthop's
				 * host for a [host]:port or relayhost destination. */
				if (send_tls_handshake(s, level, s->name, why, sizeof(why)) < 0) {
					log_info("%s: %s", x->a->r->queue_id, why);
					if (!required)
						s->tls_failed_may = 1;
					session_fail(x, "4.7.5", "%s", why);
					return -1;
				}
				if (smtp_conn_printf(&s->c, "EHLO %s\r\n", me) < 0) {
					write_failed(x, "while performing the EHLO handshake");
					return -1;
				}
				if ((rr = get_reply(x, cf.smtp_helo_timeout)) != SMTP_REPLY_OK) {
					read_failed(x, rr, "while performing the EHLO handshake");
					return -1;
				}
				if (s->rep.code / 100 != 2) {
					fail_by_reply(x, "EHLO command");
					if (s->rep.code != 421)
						quit(x);
					return -1;
				}
				note_extensions(s);
			}
		}
	}
	if (s->authenticated || (r = send_auth_lookup(s->nexthop, user, pass)) == 0)
		return 0;
	if (r < 0) {
		session_fail(x, "4.7.0", "cannot read smtp_sasl_password_maps for %s", s->nexthop);
		quit(x);
		return -1;
	}
	if (s->tls == NULL) {
		/* Never a password in plaintext: the server decides without AUTH. */
		log_warning("%s: not sending AUTH credentials for %s without TLS", s->relay, s->nexthop);
		r = 0;
	} else {
		r = send_auth(s, user, pass, why, sizeof(why));
		if (r < 0) {
			session_fail(x, "4.7.0", "%s", why);
			quit(x);
		}
	}
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(user, sizeof(user));
	return r;
}

/* Greeting, then EHLO, or HELO after a 5xx.  0 to go on, -1 when over. */
static int hello(struct run *x)
{
	const char *me = cf.myhostname && cf.myhostname[0] ? cf.myhostname : "localhost";
	struct smtp_session *s = x->s;
	enum smtp_read_result rr;

	if ((rr = get_reply(x, cf.smtp_helo_timeout)) != SMTP_REPLY_OK) {
		read_failed(x, rr, "while receiving the initial server greeting");
		return -1;
	}
	if (s->rep.code != 220) {
		fail_by_reply(x, "initial greeting");
		if (s->rep.code != 421)
			quit(x);
		return -1;
	}
	if (smtp_conn_printf(&s->c, "EHLO %s\r\n", me) < 0) {
		write_failed(x, "while performing the EHLO handshake");
		return -1;
	}
	if ((rr = get_reply(x, cf.smtp_helo_timeout)) != SMTP_REPLY_OK) {
		read_failed(x, rr, "while performing the EHLO handshake");
		return -1;
	}
	if (s->rep.code / 100 == 2) {
		note_extensions(s);
		return secure(x, me);
	}
	if (s->rep.code / 100 != 5) {
		fail_by_reply(x, "EHLO command");
		if (s->rep.code != 421)
			quit(x);
		return -1;
	}
	if (smtp_conn_printf(&s->c, "HELO %s\r\n", me) < 0) {
		write_failed(x, "while performing the HELO handshake");
		return -1;
	}
	if ((rr = get_reply(x, cf.smtp_helo_timeout)) != SMTP_REPLY_OK) {
		read_failed(x, rr, "while performing the HELO handshake");
		return -1;
	}
	if (s->rep.code / 100 == 2)
		return 0;
	if (s->rep.code / 100 == 5) {
		open_done_by_reply(x, RCPT_PENDING, "HELO");
		quit(x);
	} else {
		fail_by_reply(x, "HELO command");
		if (s->rep.code != 421)
			quit(x);
	}
	return -1;
}

/* xtext (RFC 3461 4): '+', '=' and bytes outside 33..126 as "+XX". */
static int put_xtext(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
			char e[3] = { '+', hex[*p >> 4], hex[*p & 15] };
			if (buf_append(b, e, 3) < 0)
				return -1;
		} else if (buf_putc(b, *p) < 0) {
			return -1;
		}
	}
	return 0;
}

/* The RCPT command of recipient i, with DSN parameters when offered. */
static int put_rcpt(struct run *x, size_t i)
{
	const struct deliver_rcpt *rc = &x->a->r->rcpt[i];
	struct buf b;
	int ret = -1;
	buf_init(&b, ADDR_SIZE + DELIVER_ORCPT_MAX + 128);
	if (buf_printf(&b, "RCPT TO:<%s>", rc->address) < 0)
		goto out;
	if (x->s->dsn && rc->notify) {
		if (rc->notify & NOTIFY_NEVER) {
			if (buf_puts(&b, " NOTIFY=NEVER") < 0)
				goto out;
		} else if (buf_printf(&b, " NOTIFY=%s%s%s", (rc->notify & NOTIFY_SUCCESS) ? "SUCCESS," : "",
				      (rc->notify & NOTIFY_FAILURE) ? "FAILURE," : "",
				      (rc->notify & NOTIFY_DELAY) ? "DELAY," : "") < 0) {
			goto out;
		} else {
			buf_truncate(&b, b.len - 1); /* the last comma */
		}
	}
	/* ORCPT is kept as received ("rfc822;xtext"): already encoded */
	if (x->s->dsn && rc->orcpt[0] && buf_printf(&b, " ORCPT=%s", rc->orcpt) < 0)
		goto out;
	if (buf_puts(&b, "\r\n") < 0)
		goto out;
	if (x->s->c.trace)
		ret = smtp_conn_printf(&x->s->c, "%s", b.data);
	else
		ret = smtp_conn_put(&x->s->c, b.data, b.len);
out:
	buf_free(&b);
	return ret;
}

/* Queue the envelope commands: MAIL, and with pipelining every RCPT and DATA. */
static int put_envelope(struct run *x)
{
	const struct deliver_request *r = x->a->r;
	struct smtp_session *s = x->s;
	struct buf b;
	int ret = -1;

	buf_init(&b, ADDR_SIZE + 2 * DELIVER_ENVID_MAX + 128);
	if (buf_printf(&b, "MAIL FROM:<%s>", r->sender) < 0)
		goto out;
	if (s->size_offered && buf_printf(&b, " SIZE=%llu", r->length) < 0)
		goto out;
	if ((r->flags & DELIVER_F_8BITMIME) && s->eightbit && buf_puts(&b, " BODY=8BITMIME") < 0)
		goto out;
	if ((r->flags & DELIVER_F_SMTPUTF8) && s->smtputf8 && buf_puts(&b, " SMTPUTF8") < 0)
		goto out;
	if (s->dsn && (r->flags & DELIVER_F_RET_HDRS) && buf_puts(&b, " RET=HDRS") < 0)
		goto out;
	if (s->dsn && r->envid[0] && (buf_puts(&b, " ENVID=") < 0 || put_xtext(&b, r->envid) < 0))
		goto out;
	if (smtp_conn_printf(&s->c, "%s\r\n", b.data) < 0)
		goto out;
	ret = 0;
	if (!s->pipelining)
		goto out;
	for (size_t i = 0; i < r->nrcpt && ret == 0; i++)
		if (x->a->state[i] == RCPT_PENDING && put_rcpt(x, i) < 0)
			ret = -1;
	if (ret == 0)
		ret = smtp_conn_printf(&s->c, "DATA\r\n");
out:
	buf_free(&b);
	return ret;
}

/* After a failed MAIL with pipelining the RCPT and DATA replies still come;
 * a 421 among them means the peer is closing: nothing more may be sent. */
static int drain(struct run *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (get_reply(x, cf.smtp_rcpt_timeout) != SMTP_REPLY_OK || x->s->rep.code == 421)
			return -1;
	return 0;
}

/* RCPT replies.  Returns the number accepted, or -1 when the session is over. */
static long rcpts(struct run *x)
{
	struct deliver_request *r = x->a->r;
	long accepted = 0;
	enum smtp_read_result rr;

	for (size_t i = 0; i < r->nrcpt; i++) {
		if (x->a->state[i] != RCPT_PENDING)
			continue;
		if (!x->s->pipelining && put_rcpt(x, i) < 0) {
			write_failed(x, "while sending RCPT TO");
			return -1;
		}
		if ((rr = get_reply(x, cf.smtp_rcpt_timeout)) != SMTP_REPLY_OK) {
			read_failed(x, rr, "while sending RCPT TO");
			return -1;
		}
		if (x->s->rep.code / 100 == 2) {
			x->a->state[i] = RCPT_ACCEPTED;
			accepted++;
		} else if (x->s->rep.code == 421) {
			fail_by_reply(x, "RCPT TO command");
			return -1;
		} else {
			char dsn[16], text[800];
			enum deliver_status st = reply_status(x, dsn, sizeof(dsn));
			if (st == DELIVER_OK) {
				st = DELIVER_PERM;
				snprintf(dsn, sizeof(dsn), "5.5.0");
			}
			said(x, text, sizeof(text));
			rcpt_done(x, i, st, dsn, "%s said: %s (in reply to RCPT TO command)", x->s->peer, text);
		}
	}
	return accepted;
}

/* The content as is, or converted to quoted-printable for a 7-bit peer. */
static int send_body(struct run *x)
{
	const struct deliver_request *r = x->a->r;
	x->s->c.timeout_ms = ms(cf.smtp_data_xfer_timeout);
	if (!x->s->eightbit) {
		int need = send_mime_needs_qp(x->a->msgfd, r->offset, r->length);
		if (need < 0)
			return -1;
		if (need)
			return smtp_send_content_qp(&x->s->c, x->a->msgfd, r->offset, r->length);
	}
	return smtp_send_content(&x->s->c, x->a->msgfd, r->offset, r->length);
}

/* Send the content and read the reply to ".".  0 to go on, -1 to close. */
static int content(struct run *x)
{
	struct send_attempt *a = x->a;
	enum smtp_read_result rr;

	errno = 0;
	if (send_body(x) < 0) {
		if (errno == EIO || errno == EOVERFLOW)
			session_fail(x, "4.3.0", "error reading the queue file");
		else
			write_failed(x, "while sending message body");
		return -1; /* closing the connection aborts the transaction */
	}
	if ((rr = get_reply(x, cf.smtp_data_done_timeout)) != SMTP_REPLY_OK) {
		/* The peer may have the message: no other address is tried. */
		for (size_t i = 0; i < a->r->nrcpt; i++)
			if (a->state[i] == RCPT_ACCEPTED)
				rcpt_done(x, i, DELIVER_TEMP, rr == SMTP_REPLY_MALFORMED ? "4.5.0" : "4.4.2",
					  "%s with %s while sending end of data -- message may be sent more than once",
					  rr == SMTP_REPLY_MALFORMED ? "malformed reply"
					  : rr == SMTP_REPLY_TIMEOUT ? "conversation timed out" : "lost connection",
					  x->s->peer);
		return -1;
	}
	if (x->s->rep.code / 100 == 2) {
		char dsn[16], text[800];
		reply_status(x, dsn, sizeof(dsn));
		said(x, text, sizeof(text));
		for (size_t i = 0; i < a->r->nrcpt; i++) {
			if (a->state[i] != RCPT_ACCEPTED)
				continue;
			/* RFC 3461 4.1: a next hop without DSN cannot report success */
			int relayed = !x->s->dsn && (a->r->rcpt[i].notify & NOTIFY_SUCCESS);
			rcpt_done(x, i, relayed ? DELIVER_RELAYED : DELIVER_OK, dsn, "%s", text);
		}
		a->s->uses++;
		a->s->idle = 1; /* the reply to "." ends the transaction (RFC 5321 4.1.1.4) */
		return 0;
	}
	open_done_by_reply(x, RCPT_ACCEPTED, "end of DATA");
	x->s->idle = 1;
	return x->s->rep.code == 421 ? -1 : 0;
}

/* MAIL, RCPT, DATA, content.  0 to go on, -1 to just close. */
static int transaction(struct run *x)
{
	struct deliver_request *r = x->a->r;
	struct smtp_session *s = x->s;
	size_t open = 0;
	enum smtp_read_result rr;

	for (size_t i = 0; i < r->nrcpt; i++)
		if (x->a->state[i] == RCPT_PENDING)
			open++;
	if (open == 0)
		return 0;
	s->c.timeout_ms = ms(cf.smtp_mail_timeout);
	s->idle = 0;
	if (put_envelope(x) < 0) {
		write_failed(x, "while sending MAIL FROM");
		return -1;
	}
	if ((rr = get_reply(x, cf.smtp_mail_timeout)) != SMTP_REPLY_OK) {
		read_failed(x, rr, "while sending MAIL FROM");
		return -1;
	}
	if (s->rep.code / 100 != 2) {
		if (s->rep.code / 100 == 5)
			open_done_by_reply(x, RCPT_PENDING, "MAIL FROM");
		else
			fail_by_reply(x, "MAIL FROM command");
		if (s->rep.code == 421)
			return -1;
		return s->pipelining ? drain(x, open + 1) : 0;
	}
	long accepted = rcpts(x);
	if (accepted < 0)
		return -1;
	if (!s->pipelining) {
		if (accepted == 0)
			return 0;
		if (smtp_conn_printf(&s->c, "DATA\r\n") < 0) {
			write_failed(x, "while sending DATA");
			return -1;
		}
	}
	if ((rr = get_reply(x, cf.smtp_data_init_timeout)) != SMTP_REPLY_OK) {
		read_failed(x, rr, "while sending DATA");
		return -1;
	}
	if (s->rep.code != 354) {
		if (accepted == 0) /* the expected 503/554 after every RCPT failed, or closing */
			return s->rep.code == 421 ? -1 : 0;
		if (s->rep.code / 100 == 4) {
			fail_by_reply(x, "DATA command");
			return s->rep.code == 421 ? -1 : 0;
		}
		open_done_by_reply(x, RCPT_ACCEPTED, "DATA");
		return 0;
	}
	if (accepted == 0)
		return -1; /* 354 without a recipient: drop the connection rather than send */
	return content(x);
}

/* Every open recipient gets this final result (no transaction was started). */
static void all_open_done(struct run *x, enum deliver_status st, const char *dsn, const char *text)
{
	for (size_t i = 0; i < x->a->r->nrcpt; i++)
		if (x->a->state[i] != RCPT_DONE)
			rcpt_done(x, i, st, dsn, "%s", text);
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int send_smtp_session(struct send_attempt *a, struct smtp_session *s)
{
	struct run x = { a, s };
	char text[600];

	a->s = s;
	if (!s->greeted) {
		if (hello(&x) < 0)
			return -1;
		s->greeted = 1;
		s->idle = 1;
	}
	a->t_ready = wall_now();
	if ((a->r->flags & DELIVER_F_SMTPUTF8) && !s->smtputf8) {
		snprintf(text, sizeof(text), "SMTPUTF8 is required, but was not offered by host %s", s->peer);
		all_open_done(&x, DELIVER_PERM, "5.6.7", text);
		return 0;
	}
	if (s->size_limit > 0 && a->r->length > s->size_limit) {
		snprintf(text, sizeof(text), "message size %llu exceeds size limit %llu of server %s", a->r->length,
			 s->size_limit, s->peer);
		all_open_done(&x, DELIVER_PERM, "5.3.4", text);
		return 0;
	}
	return transaction(&x);
}
