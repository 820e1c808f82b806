/*
 * send_auth.c — AUTH PLAIN / LOGIN to a relayhost (RFC 4954).
 *
 * Public: send_auth_lookup, send_auth.
 *
 * Credentials come from smtp_sasl_password_maps, a table "nexthop
 * user:password" keyed by the request's nexthop exactly as relayhost or the
 * transport table names it ("[smtp.example.com]:587"), compiled with
 * ternctl makemap; the table file should be root:mail_owner 0640.  The
 * caller (send_smtp.c) uses them only inside TLS.  The password never
 * reaches a log line: the AUTH command is not traced and every buffer that
 * held it is wiped.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cdbmap.h"
#include "conf.h"
#include "log.h"
#include "saslcodec.h"
#include "send.h"

int
send_auth_lookup(const char *nexthop, char *user, char *pass)
{
	static struct cdbmap *table;
	struct buf v;
	char *colon;
	int r;

	user[0] = pass[0] = '\0';
	if (cf.smtp_sasl_password_maps[0] == '\0')
		return 0;
	if (table == NULL && (table = cdbmap_open_table(cf.smtp_sasl_password_maps)) == NULL) {
		log_warning("smtp_sasl_password_maps %s: %s", cf.smtp_sasl_password_maps, strerror(errno));
		return -1;
	}
	buf_init(&v, 2 * SASL_FIELD_MAX + 2);
	r = cdbmap_lookup(table, nexthop, &v);
	if (r == 1) {
		colon = strchr(v.data, ':');
		if (colon == NULL || colon == v.data || colon[1] == '\0' || (size_t)(colon - v.data) > SASL_FIELD_MAX ||
		    strlen(colon + 1) > SASL_FIELD_MAX) {
			log_warning("smtp_sasl_password_maps: %s: value is not user:password", nexthop);
			r = -1;
		} else {
			memcpy(user, v.data, (size_t)(colon - v.data));
			user[colon - v.data] = '\0';
			memcpy(pass, colon + 1, strlen(colon + 1) + 1);
		}
	}
	explicit_bzero(v.data, v.cap);
	buf_free(&v);
	return r;
}

/* Send line (not traced: it holds a secret), read the reply. */
static int
secret_line(struct smtp_session *s, const char *line, char *why, size_t whysize)
{
	const char *trace = s->c.trace;
	enum smtp_read_result rr;
	int rc;

	s->c.trace = NULL;
	rc = smtp_conn_printf(&s->c, "%s\r\n", line);
	if (rc == 0)
		rc = smtp_conn_flush(&s->c);
	explicit_bzero(s->c.out.data, s->c.out.cap);
	s->c.trace = trace;
	if (rc < 0) {
		snprintf(why, whysize, "lost connection with %s while authenticating", s->peer);
		return -1;
	}
	if ((rr = smtp_read_reply(&s->c, &s->rep)) != SMTP_REPLY_OK) {
		snprintf(why, whysize, "%s with %s while authenticating",
			 rr == SMTP_REPLY_TIMEOUT ? "conversation timed out" : "lost connection", s->peer);
		return -1;
	}
	return 0;
}

int
send_auth(struct smtp_session *s, const char *user, const char *pass, char *why, size_t whysize)
{
	unsigned char msg[2 * SASL_FIELD_MAX + 2];
	char enc[1200], line[1300], text[600];
	char mechs[256];
	int login, rc = -1;
	long n;

	if (!smtp_reply_ext_param(&s->rep, "AUTH", mechs, sizeof(mechs))) {
		snprintf(why, whysize, "%s offers no AUTH", s->peer);
		return -1;
	}
	login = strcasestr(mechs, "PLAIN") == NULL && strcasestr(mechs, "LOGIN") != NULL;
	if (!login) {
		if ((n = sasl_plain_build(user, pass, msg, sizeof(msg))) < 0 ||
		    sasl_b64_encode(msg, (size_t)n, enc, sizeof(enc)) < 0)
			goto bad;
		snprintf(line, sizeof(line), "AUTH PLAIN %s", enc);
		if (secret_line(s, line, why, whysize) < 0)
			goto out;
	} else {
		snprintf(line, sizeof(line), "AUTH LOGIN");
		if (secret_line(s, line, why, whysize) < 0)
			goto out;
		if (s->rep.code != 334)
			goto refused;
		if (sasl_b64_encode((const unsigned char *)user, strlen(user), enc, sizeof(enc)) < 0)
			goto bad;
		if (secret_line(s, enc, why, whysize) < 0)
			goto out;
		if (s->rep.code != 334)
			goto refused;
		if (sasl_b64_encode((const unsigned char *)pass, strlen(pass), enc, sizeof(enc)) < 0)
			goto bad;
		if (secret_line(s, enc, why, whysize) < 0)
			goto out;
	}
	if (s->rep.code == 235) {
		s->authenticated = 1;
		rc = 0;
		goto out;
	}
refused:
	smtp_reply_text(&s->rep, text, sizeof(text));
	snprintf(why, whysize, "SASL authentication failed; server %s said: %s", s->peer, text);
	goto out;
bad:
	snprintf(why, whysize, "SASL credentials for %s do not fit", s->nexthop);
out:
	explicit_bzero(msg, sizeof(msg));
	explicit_bzero(enc, sizeof(enc));
	explicit_bzero(line, sizeof(line));
	return rc;
}
