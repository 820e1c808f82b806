/*
 * smtpd_auth.c — AUTH PLAIN and LOGIN (RFC 4954, RFC 4616,
 * draft-murchison-sasl-login) against a table of crypt(3) hashes.
 *
 * Public: smtpd_auth_init, smtpd_auth_offer, smtpd_auth_required,
 * smtpd_auth_check, smtpd_auth, smtpd_auth_sender_ok.
 *
 * Credentials: smtpd_sasl_password_maps names a text table "user hash"
 * compiled to cdb (ternctl passwd writes both); hashes are whatever
 * crypt(3) (libxcrypt) verifies: yescrypt "$y$", SHA-512 "$6$".  Unknown
 * users are checked against a dummy hash so they cost the same time.
 *
 * Replies: 334 challenges; "*" cancels (501 5.7.0); undecodable base64
 * 501 5.5.2; wrong credentials 535 5.7.8 after smtpd_auth_failure_delay,
 * and after smtpd_auth_failure_limit of them 421 and the end of the
 * session; table trouble 454 4.7.0.  AUTH is refused before EHLO, once
 * authenticated, inside a transaction (503), and outside TLS when TLS is
 * required for it (538 5.7.11).
 *
 * Secrets: passwords and the base64 lines that carry them are never logged
 * (smtpd_cmd.c does not trace AUTH arguments) and are wiped from every
 * buffer they passed through before this returns.
 */
#include <crypt.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cdbmap.h"
#include "conf.h"
#include "log.h"
#include "saslcodec.h"
#include "smtpd.h"
#include "strutil.h"

#define AUTH_LINE_MAX 2048 /* one 334 response line (base64) */
#define AUTH_DEC_MAX 1024  /* decoded response: PLAIN needs 3 * 255 + 2 */

/* A valid hash for unknown users, so their check costs a real crypt(). */
#define DUMMY_HASH "$6$terndummysalt$jjIBH2Ksh9PfGpPt11QXA8xKmTo3TGJIAuAAbdfUo.wPst2vDYr/IJ5vSwLQASD44mprCStxChr6UeRadMN8D/"

static struct cdbmap *passwords;
static struct crypt_data cdata; /* ~32 KB: not on the stack */

enum { AUTH_OK = 0, AUTH_BAD = 1, AUTH_TEMP = 2 };

void
smtpd_auth_init(void)
{
	int enabled = cf.smtpd_sasl_auth_enable || smtpd_mode != SMTPD_MODE_SMTP;

	if (!enabled)
		return;
	if (cf.smtpd_sasl_password_maps[0] == '\0') {
		log_warning("AUTH is enabled but smtpd_sasl_password_maps is empty: AUTH is not offered");
		return;
	}
	if ((passwords = cdbmap_open_table(cf.smtpd_sasl_password_maps)) == NULL)
		log_warning("smtpd_sasl_password_maps %s: %s; AUTH answers 454 until it exists",
			    cf.smtpd_sasl_password_maps, strerror(errno));
}

static int
enabled(void)
{
	return (cf.smtpd_sasl_auth_enable || smtpd_mode != SMTPD_MODE_SMTP) && cf.smtpd_sasl_password_maps[0] != '\0';
}

static int
is_loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

/* TLS state allows AUTH now. */
static int
channel_ok(const struct smtpd_session *s)
{
	if (s->st->tls != NULL || !cf.smtpd_tls_auth_only)
		return 1;
	return cf.smtpd_sasl_plaintext_loopback && is_loopback(s->ip);
}

int
smtpd_auth_offer(const struct smtpd_session *s)
{
	return enabled() && channel_ok(s) && s->sasl_user[0] == '\0';
}

int
smtpd_auth_required(const struct smtpd_session *s)
{
	return smtpd_mode != SMTPD_MODE_SMTP && s->sasl_user[0] == '\0';
}

const char *
smtpd_auth_check(const struct smtpd_session *s)
{
	if (!enabled())
		return "503 5.5.1 Error: authentication not enabled";
	if (s->proto != SMTPD_PROTO_ESMTP)
		return "503 5.5.1 Error: send EHLO first";
	if (s->sasl_user[0] != '\0')
		return "503 5.5.1 Error: already authenticated";
	if (s->in_mail)
		return "503 5.5.1 Error: MAIL transaction in progress";
	if (!channel_ok(s))
		return "538 5.7.11 Encryption required for requested authentication mechanism";
	return NULL;
}

/* Check user/pass.  AUTH_OK, AUTH_BAD or AUTH_TEMP. */
static int
verify(const char *user, const char *pass)
{
	struct buf hash;
	const char *h;
	char *res;
	int found, rc;

	if (passwords == NULL && (passwords = cdbmap_open_table(cf.smtpd_sasl_password_maps)) == NULL)
		return AUTH_TEMP;
	buf_init(&hash, 512);
	found = cdbmap_lookup(passwords, user, &hash);
	if (found < 0) {
		buf_free(&hash);
		return AUTH_TEMP;
	}
	h = found == 1 && hash.len > 0 ? hash.data : DUMMY_HASH;
	memset(&cdata, 0, sizeof(cdata));
	res = crypt_r(pass, h, &cdata);
	rc = (found == 1 && res != NULL && res[0] != '*' && strcmp(res, h) == 0) ? AUTH_OK : AUTH_BAD;
	explicit_bzero(&cdata, sizeof(cdata));
	buf_free(&hash);
	return rc;
}

/* Wipe what the line reader and the line buffer held of a secret line. */
static void
wipe_input(struct smtpd_session *s)
{
	explicit_bzero(s->line.data, s->line.cap);
	/* Bytes before lr.start are consumed input (the response line). */
	if (s->lr.buf != NULL && s->lr.start <= s->lr.bufsize)
		explicit_bzero(s->lr.buf, s->lr.start);
}

enum resp { RESP_OK, RESP_CANCEL, RESP_BAD64, RESP_LONG, RESP_LOST };

/* Send "334 challenge", read the client's line, decode it into out. */
static enum resp
challenge(struct smtpd_session *s, const char *chal, unsigned char *out, size_t outsize, size_t *outlen)
{
	enum lr_ending ending;
	enum lr_result r;
	enum resp res;

	smtpd_reply(s, "334 %s", chal);
	if (stream_flush(s->st) < 0)
		return RESP_LOST;
	lr_set_max(&s->lr, AUTH_LINE_MAX);
	stream_record_start(s->st, 0);
	r = lr_getline(&s->lr, &s->line, &ending);
	stream_record_end(s->st);
	if (r == LR_TOOLONG)
		return RESP_LONG;
	if (r != LR_LINE || ending == LR_END_NONE) {
		log_info("lost connection after AUTH from %s[%s]", s->name, s->ip);
		return RESP_LOST;
	}
	if (s->line.len == 1 && s->line.data[0] == '*')
		res = RESP_CANCEL;
	else if (sasl_b64_decode(s->line.data, s->line.len, out, outsize, outlen) < 0)
		res = RESP_BAD64;
	else
		res = RESP_OK;
	wipe_input(s);
	return res;
}

/* Decode an initial response ("=" is the empty one). */
static enum resp
initial(const char *ir, unsigned char *out, size_t outsize, size_t *outlen)
{
	if (strcmp(ir, "*") == 0)
		return RESP_CANCEL;
	if (strcmp(ir, "=") == 0) {
		*outlen = 0;
		return RESP_OK;
	}
	return sasl_b64_decode(ir, strlen(ir), out, outsize, outlen) < 0 ? RESP_BAD64 : RESP_OK;
}

/* Reply for a response that was not a usable answer; -1 (an error). */
static int
resp_error(struct smtpd_session *s, enum resp r)
{
	switch (r) {
	case RESP_CANCEL:
		smtpd_reply(s, "501 5.7.0 Authentication aborted");
		break;
	case RESP_BAD64:
		smtpd_reply(s, "501 5.5.2 Cannot decode response");
		break;
	case RESP_LONG:
		smtpd_reply(s, "500 5.5.6 Authentication exchange line is too long");
		break;
	case RESP_LOST:
	case RESP_OK:
		s->done = 1;
		break;
	}
	return -1;
}

static void
pause_ms(long long ms)
{
	while (ms > 0) {
		int step = ms > 1000 ? 1000 : (int)ms;

		(void)poll(NULL, 0, step);
		ms -= step;
	}
}

/* Copy a decoded LOGIN field (no NUL inside, 1..255 octets). */
static int
login_field(const unsigned char *p, size_t n, char *out)
{
	if (n == 0 || n > SASL_FIELD_MAX || memchr(p, '\0', n) != NULL)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* Collect the credentials for mech.  0 with user/pass, 1 when the client
 * sent a syntactically bad message (a failure), -1 after an error reply. */
static int
collect(struct smtpd_session *s, const char *mech, const char *ir, char *authz, char *user, char *pass,
	unsigned char *dec, size_t decsize)
{
	size_t n = 0;
	enum resp r;

	if (strcasecmp(mech, "PLAIN") == 0) {
		r = ir ? initial(ir, dec, decsize, &n) : challenge(s, "", dec, decsize, &n);
		if (r != RESP_OK)
			return resp_error(s, r);
		return sasl_plain_parse(dec, n, authz, user, pass) == SASL_PLAIN_OK ? 0 : 1;
	}
	/* LOGIN: "Username:" then "Password:" (an initial response is the user). */
	r = ir ? initial(ir, dec, decsize, &n) : challenge(s, "VXNlcm5hbWU6", dec, decsize, &n);
	if (r != RESP_OK)
		return resp_error(s, r);
	if (login_field(dec, n, user) < 0)
		return 1;
	explicit_bzero(dec, decsize);
	r = challenge(s, "UGFzc3dvcmQ6", dec, decsize, &n);
	if (r != RESP_OK)
		return resp_error(s, r);
	return login_field(dec, n, pass) < 0 ? 1 : 0;
}

int
smtpd_auth(struct smtpd_session *s, char *args)
{
	char mech[16], authz[SASL_FIELD_MAX + 1], user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	unsigned char dec[AUTH_DEC_MAX];
	const char *ir = NULL, *method;
	size_t mlen = strcspn(args, " ");
	int rc, v = AUTH_BAD;

	authz[0] = user[0] = pass[0] = '\0';
	if (mlen == 0 || mlen >= sizeof(mech)) {
		smtpd_reply(s, "504 5.5.4 Unsupported authentication mechanism");
		return -1;
	}
	memcpy(mech, args, mlen);
	mech[mlen] = '\0';
	if (args[mlen] == ' ') {
		ir = args + mlen + 1;
		while (*ir == ' ')
			ir++;
		if (*ir == '\0' || strchr(ir, ' ') != NULL) {
			smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
			return -1;
		}
	}
	if (strcasecmp(mech, "PLAIN") == 0)
		method = "PLAIN";
	else if (strcasecmp(mech, "LOGIN") == 0)
		method = "LOGIN";
	else {
		smtpd_reply(s, "504 5.5.4 Unsupported authentication mechanism");
		return -1;
	}
	rc = collect(s, method, ir, authz, user, pass, dec, sizeof(dec));
	explicit_bzero(dec, sizeof(dec));
	if (ir != NULL)
		explicit_bzero((char *)ir, strlen(ir));
	if (rc < 0)
		goto out;
	/* Acting for somebody else (authzid != authcid) is not supported. */
	if (rc == 0 && (authz[0] == '\0' || strcmp(authz, user) == 0))
		v = verify(user, pass);
	explicit_bzero(pass, sizeof(pass));
	if (v == AUTH_TEMP) {
		log_warning("%s[%s]: SASL %s authentication failed: password table %s unavailable", s->name, s->ip,
			    method, cf.smtpd_sasl_password_maps);
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		rc = -1;
		goto out;
	}
	if (v == AUTH_OK) {
		if (str_copy(s->sasl_user, sizeof(s->sasl_user), user) < 0)
			log_panic("smtpd_auth: user name does not fit");
		s->sasl_method = method;
		log_info("%s[%s]: sasl_method=%s, sasl_username=%s", s->name, s->ip, method, user);
		smtpd_reply(s, "235 2.7.0 Authentication successful");
		rc = 0;
		goto out;
	}
	s->auth_failures++;
	log_warning("%s[%s]: SASL %s authentication failed, sasl_username=%s", s->name, s->ip, method,
		    user[0] ? user : "(none)");
	stream_flush(s->st);
	pause_ms(cf.smtpd_auth_failure_delay * 1000);
	smtpd_reply(s, "535 5.7.8 Error: authentication failed");
	if (s->auth_failures >= (unsigned long long)cf.smtpd_auth_failure_limit) {
		log_info("too many AUTH failures from %s[%s]", s->name, s->ip);
		smtpd_reply_421(s, "4.7.0", "Error: too many failed authentication attempts");
	}
	rc = -1;
out:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(user, sizeof(user));
	explicit_bzero(authz, sizeof(authz));
	return rc;
}

int
smtpd_auth_sender_ok(const struct smtpd_session *s, const char *sender, char *reply, size_t replysize)
{
	static struct cdbmap *logins;
	struct buf owners;
	const char *at, *p;
	char tok[SASL_FIELD_MAX + 1];
	int found, r;

	if (cf.smtpd_sender_login_maps[0] == '\0' || s->sasl_user[0] == '\0' || sender[0] == '\0')
		return 0;
	if (logins == NULL && (logins = cdbmap_open_table(cf.smtpd_sender_login_maps)) == NULL) {
		snprintf(reply, replysize, "451 4.3.0 <%s>: Sender address rejected: temporary lookup failure", sender);
		return -1;
	}
	buf_init(&owners, 4096);
	/* The whole address, then "@domain". */
	found = cdbmap_lookup(logins, sender, &owners);
	if (found == 0 && (at = strrchr(sender, '@')) != NULL)
		found = cdbmap_lookup(logins, at, &owners);
	if (found < 0) {
		buf_free(&owners);
		snprintf(reply, replysize, "451 4.3.0 <%s>: Sender address rejected: temporary lookup failure", sender);
		return -1;
	}
	p = owners.data;
	while (found == 1 && (r = list_next(&p, tok, sizeof(tok))) != 0) {
		if (r > 0 && strcasecmp(tok, s->sasl_user) == 0) {
			buf_free(&owners);
			return 0;
		}
	}
	buf_free(&owners);
	snprintf(reply, replysize, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s",
		 sender[0] ? sender : "", s->sasl_user);
	return -1;
}
