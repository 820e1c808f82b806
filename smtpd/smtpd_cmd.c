/*
 * smtpd_cmd.c — the SMTP command table and the command handlers.
 *
 * Public: smtpd_cmd_table, smtpd_cmd_count, smtpd_cmd_find,
 * smtpd_cmd_dispatch.
 *
 * Each command is one table row {verb, check, proceed, flags}: check is a
 * pure function of the session state that returns the 503 refusing an
 * out-of-order command; flags say whether an argument is required or
 * forbidden (501); proceed parses the arguments and acts.  The dispatcher
 * applies them in that order, counts errors toward the session's limit and
 * keeps the statistics for the disconnect log line.
 *
 * Verbs are matched case-insensitively.  A command line with NUL or any
 * other control character (a bare CR included) is refused with 500 before
 * any parsing.  MAIL/RCPT paths go through addr_parse_path, so what reaches
 * the envelope never holds a control character.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "log.h"
#include "proto_deliver.h"
#include "smtpd.h"
#include "strutil.h"

/* What a proceed function returns. */
enum { CMD_OK = 0, CMD_REFUSED = 1, CMD_ERROR = -1 };

/* ---- state checks ---- */

static const char *
check_mail(const struct smtpd_session *s)
{
	if (s->proto == SMTPD_PROTO_NONE)
		return "503 5.5.1 Error: send HELO/EHLO first";
	if (s->in_mail)
		return "503 5.5.1 Error: nested MAIL command";
	/* RFC 3207 encrypt level and RFC 6409 4.3 / RFC 8314 submission. */
	if (smtpd_tls_required(s))
		return "530 5.7.0 Must issue a STARTTLS command first";
	if (smtpd_auth_required(s))
		return "530 5.7.0 Authentication required";
	return NULL;
}

static const char *
check_rcpt(const struct smtpd_session *s)
{
	if (!s->in_mail)
		return "503 5.5.1 Error: need MAIL command";
	if (s->bdat != NULL)
		return "503 5.5.1 Error: BDAT in progress";
	return NULL;
}

static const char *
check_data(const struct smtpd_session *s)
{
	if (!s->in_mail)
		return "503 5.5.1 Error: need MAIL command";
	if (s->env.nrcpt == 0)
		return "503 5.5.1 Error: need RCPT command";
	/* RFC 3030 2: DATA and BDAT may not be mixed in one transaction. */
	if (s->bdat != NULL)
		return "503 5.5.1 Error: BDAT and DATA cannot be mixed";
	return NULL;
}

/* ---- ESMTP parameters ---- */

/* After a path: nothing, or one or more spaces and the parameters. */
static int
params_start(char *path, const char *end, char **params)
{
	if (*end != '\0' && *end != ' ')
		return -1;
	*params = path + (end - path);
	return 0;
}

/* The MAIL parameters of RFC 1870, 6152, 6531 and 3461 into size, flags, envid. */
static int
mail_params(struct smtpd_session *s, char *p, unsigned long long *size, unsigned *flags, const char **envid)
{
	int seen_size = 0, seen_body = 0, seen_utf8 = 0, seen_ret = 0, seen_envid = 0;
	char *key, *value;
	int r;

	while ((r = smtpd_next_param(&p, &key, &value)) > 0) {
		if (s->proto != SMTPD_PROTO_ESMTP) {
			smtpd_reply(s, "555 5.5.4 Unsupported option: %s (send EHLO first)", key);
			return -1;
		}
		if (strcasecmp(key, "SIZE") == 0) {
			const char *d;

			if (seen_size++ || value == NULL) {
				smtpd_reply(s, "501 5.5.4 Bad SIZE parameter syntax");
				return -1;
			}
			for (d = value; *d >= '0' && *d <= '9'; d++)
				;
			if (*d != '\0') {
				smtpd_reply(s, "501 5.5.4 Bad SIZE parameter syntax");
				return -1;
			}
			/* Only digits: a failure here is overflow, i.e. far too big. */
			if (parse_ull(value, (unsigned long long)-1, size) < 0)
				*size = (unsigned long long)-1;
		} else if (strcasecmp(key, "BODY") == 0) {
			if (seen_body++ || value == NULL) {
				smtpd_reply(s, "501 5.5.4 Bad BODY parameter syntax");
				return -1;
			}
			if (strcasecmp(value, "8BITMIME") == 0) {
				*flags |= DELIVER_F_8BITMIME;
			} else if (strcasecmp(value, "7BIT") == 0) {
				*flags &= ~(unsigned)DELIVER_F_8BITMIME;
			} else {
				smtpd_reply(s, "501 5.5.4 Unsupported BODY parameter value");
				return -1;
			}
		} else if (strcasecmp(key, "SMTPUTF8") == 0 && cf.smtputf8_enable) {
			if (seen_utf8++ || value != NULL) {
				smtpd_reply(s, "501 5.5.4 Bad SMTPUTF8 parameter syntax");
				return -1;
			}
			*flags |= DELIVER_F_SMTPUTF8;
		} else if (strcasecmp(key, "RET") == 0) {
			if (seen_ret++ || value == NULL) {
				smtpd_reply(s, "501 5.5.4 Bad RET parameter syntax");
				return -1;
			}
			if (strcasecmp(value, "HDRS") == 0) {
				*flags |= DELIVER_F_RET_HDRS;
			} else if (strcasecmp(value, "FULL") != 0) {
				smtpd_reply(s, "501 5.5.4 Bad RET parameter value");
				return -1;
			}
		} else if (strcasecmp(key, "ENVID") == 0) {
			/* RFC 3461 4.4: xtext, at most 100 characters; stored as received. */
			if (seen_envid++ || value == NULL || !smtpd_xtext_ok(value, 100)) {
				smtpd_reply(s, "501 5.5.4 Bad ENVID parameter syntax");
				return -1;
			}
			*envid = value;
		} else {
			smtpd_reply(s, "555 5.5.4 Unsupported option: %s", key);
			return -1;
		}
	}
	if (r < 0) {
		smtpd_reply(s, "501 5.5.4 Bad parameter syntax");
		return -1;
	}
	return 0;
}

/* The RCPT parameters of RFC 3461: NOTIFY and ORCPT. */
static int
rcpt_params(struct smtpd_session *s, char *p, unsigned *notify, const char **orcpt)
{
	char *key, *value;
	int r;

	while ((r = smtpd_next_param(&p, &key, &value)) > 0) {
		if (s->proto != SMTPD_PROTO_ESMTP) {
			smtpd_reply(s, "555 5.5.4 Unsupported option: %s (send EHLO first)", key);
			return -1;
		}
		if (strcasecmp(key, "NOTIFY") == 0) {
			if (*notify != 0 || value == NULL || (*notify = smtpd_parse_notify(value)) == 0) {
				smtpd_reply(s, "501 5.5.4 Bad NOTIFY parameter syntax");
				return -1;
			}
		} else if (strcasecmp(key, "ORCPT") == 0) {
			if (*orcpt != NULL || value == NULL || !smtpd_orcpt_ok(value)) {
				smtpd_reply(s, "501 5.5.4 Bad ORCPT parameter syntax");
				return -1;
			}
			*orcpt = value;
		} else {
			smtpd_reply(s, "555 5.5.4 Unsupported option: %s", key);
			return -1;
		}
	}
	if (r < 0) {
		smtpd_reply(s, "501 5.5.4 Bad parameter syntax");
		return -1;
	}
	return 0;
}

/* 1 when s holds an 8-bit byte (a UTF-8 address needs SMTPUTF8). */
static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* addr_parse_path flags for MAIL/RCPT paths. */
static int
path_flags(int utf8)
{
	int f = utf8 ? ADDR_UTF8 : 0;

	if (!cf.strict_rfc821_envelopes)
		f |= ADDR_NO_BRACKETS;
	return f;
}

/* "FROM:" / "TO:", case-insensitively, then optional spaces (lenient clients). */
static char *
skip_keyword(char *args, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(args, kw, n) != 0)
		return NULL;
	args += n;
	while (*args == ' ')
		args++;
	return args;
}

/* ---- handlers ---- */

static int
helo_common(struct smtpd_session *s, char *args, enum smtpd_proto proto)
{
	if (strlen(args) > SMTPD_HELO_MAX) {
		smtpd_reply(s, "501 5.5.4 Error: hostname too long");
		return CMD_ERROR;
	}
	smtpd_sanitise_helo(args, s->helo, sizeof(s->helo));
	/* RFC 5321 4.1.4: a new HELO/EHLO abandons any transaction. */
	smtpd_txn_reset(s);
	s->proto = proto;
	return CMD_OK;
}

static int
do_helo(struct smtpd_session *s, char *args)
{
	if (helo_common(s, args, SMTPD_PROTO_SMTP) < 0)
		return CMD_ERROR;
	smtpd_reply(s, "250 %s", cf.myhostname);
	return CMD_OK;
}

static int
do_ehlo(struct smtpd_session *s, char *args)
{
	if (helo_common(s, args, SMTPD_PROTO_ESMTP) < 0)
		return CMD_ERROR;
	smtpd_reply(s, "250-%s", cf.myhostname);
	smtpd_reply(s, "250-PIPELINING");
	if (cf.message_size_limit > 0)
		smtpd_reply(s, "250-SIZE %lld", cf.message_size_limit);
	else
		smtpd_reply(s, "250-SIZE");
	smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
	smtpd_reply(s, "250-8BITMIME");
	smtpd_reply(s, "250-DSN");
	if (cf.smtputf8_enable)
		smtpd_reply(s, "250-SMTPUTF8");
	if (smtpd_tls_offer(s))
		smtpd_reply(s, "250-STARTTLS");
	if (smtpd_auth_offer(s))
		smtpd_reply(s, "250-AUTH PLAIN LOGIN");
	smtpd_reply(s, "250 CHUNKING");
	return CMD_OK;
}

static int
do_mail(struct smtpd_session *s, char *args)
{
	unsigned long long size = 0;
	unsigned flags = 0;
	const char *end, *envid = "";
	enum addr_error e;
	struct addr a;
	char *p, *params;

	if ((p = skip_keyword(args, "FROM:")) == NULL) {
		smtpd_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return CMD_ERROR;
	}
	/* UTF-8 is parsed when offered; whether SMTPUTF8 was given is known
	 * only from the parameters after the path, checked below. */
	e = addr_parse_path(p, ADDR_ALLOW_NULL | path_flags(cf.smtputf8_enable), &a, &end);
	if (e != ADDR_OK || params_start(p, end, &params) < 0) {
		smtpd_reply(s, "501 5.1.7 Bad sender address syntax%s%s", e != ADDR_OK ? ": " : "",
			    e != ADDR_OK ? addr_strerror(e) : "");
		return CMD_ERROR;
	}
	if (mail_params(s, params, &size, &flags, &envid) < 0)
		return CMD_ERROR;
	if (has_8bit(a.mailbox) && !(flags & DELIVER_F_SMTPUTF8)) {
		/* RFC 6531 3.5 */
		smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send UTF-8 addresses");
		return CMD_ERROR;
	}
	if (cf.message_size_limit > 0 && size > (unsigned long long)cf.message_size_limit) {
		smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return CMD_ERROR;
	}
	{
		char reply[ADDR_SIZE + 160];

		if (!a.is_null && smtpd_auth_sender_ok(s, a.mailbox, reply, sizeof(reply)) < 0) {
			smtpd_reply(s, "%s", reply);
			log_info("NOQUEUE: reject: MAIL from %s[%s]: %s; sasl_username=%s", s->name, s->ip, reply,
				 s->sasl_user);
			return CMD_ERROR;
		}
	}
	smtpd_txn_reset(s);
	qf_set(&s->env.sender, a.is_null ? "" : a.mailbox);
	qf_set(&s->env.envid, envid);
	s->env.flags = flags;
	s->declared_size = size;
	s->in_mail = 1;
	smtpd_reply(s, "250 2.1.0 Ok");
	return CMD_OK;
}

/* Log a refused recipient in Postfix's shape. */
static void
log_rcpt_reject(const struct smtpd_session *s, const char *reply, const char *rcpt)
{
	log_info("NOQUEUE: reject: RCPT from %s[%s]: %s; from=<%s> to=<%s> proto=%s helo=<%s>", s->name, s->ip,
		 reply, s->env.sender, rcpt, smtpd_proto_name(s), s->helo);
}

static unsigned long long
rcpt_limit(void)
{
	unsigned long long lim = QF_MAX_RCPT;

	if (cf.smtpd_recipient_limit > 0 && (unsigned long long)cf.smtpd_recipient_limit < lim)
		lim = (unsigned long long)cf.smtpd_recipient_limit;
	return lim;
}

static int
do_rcpt(struct smtpd_session *s, char *args)
{
	char reply[ADDR_SIZE + 128];
	char mailbox[ADDR_SIZE + SMTPD_NAME_MAX];
	const char *end, *orcpt = NULL;
	unsigned notify = 0;
	enum addr_error e;
	struct addr a;
	char *p, *params;

	if ((p = skip_keyword(args, "TO:")) == NULL) {
		smtpd_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return CMD_ERROR;
	}
	e = addr_parse_path(p, ADDR_ALLOW_NO_DOMAIN | path_flags(s->env.flags & DELIVER_F_SMTPUTF8), &a, &end);
	if (e == ADDR_ERR_UTF8) {
		smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send UTF-8 addresses");
		return CMD_ERROR;
	}
	if (e != ADDR_OK || params_start(p, end, &params) < 0) {
		smtpd_reply(s, "501 5.1.3 Bad recipient address syntax%s%s", e != ADDR_OK ? ": " : "",
			    e != ADDR_OK ? addr_strerror(e) : "");
		return CMD_ERROR;
	}
	if (rcpt_params(s, params, &notify, &orcpt) < 0)
		return CMD_ERROR;
	if (s->env.nrcpt >= rcpt_limit()) {
		smtpd_reply(s, "452 4.5.3 Error: too many recipients");
		/* A client that ignores the 452s is misbehaving, not unlucky. */
		return ++s->rcpt_overshoot > SMTPD_RCPT_OVERSHOOT ? CMD_ERROR : CMD_REFUSED;
	}
	if (a.domain[0] == '\0') {
		/* RFC 5321 4.5.1: <postmaster> without a domain must be accepted. */
		if (strcasecmp(a.local, "postmaster") != 0) {
			smtpd_reply(s, "501 5.1.3 Bad recipient address syntax: domain required");
			return CMD_ERROR;
		}
		snprintf(mailbox, sizeof(mailbox), "postmaster@%s", cf.myhostname);
	} else {
		/* An authenticated client may relay like a trusted one. */
		if (smtpd_check_rcpt(&a, s->trusted || s->sasl_user[0] != '\0', reply, sizeof(reply)) < 0) {
			smtpd_reply(s, "%s", reply);
			log_rcpt_reject(s, reply, a.mailbox);
			return CMD_ERROR;
		}
		if (str_copy(mailbox, sizeof(mailbox), a.mailbox) < 0)
			log_panic("do_rcpt: parsed mailbox does not fit");
	}
	qf_envelope_add_rcpt(&s->env, mailbox, orcpt, notify);
	smtpd_reply(s, "250 2.1.5 Ok");
	return CMD_OK;
}

static int
do_data(struct smtpd_session *s, char *args)
{
	return smtpd_data(s) < 0 ? CMD_ERROR : CMD_OK;
}

static int
do_bdat(struct smtpd_session *s, char *args)
{
	return smtpd_bdat(s, args) < 0 ? CMD_ERROR : CMD_OK;
}

static int
do_rset(struct smtpd_session *s, char *args)
{
	smtpd_txn_reset(s);
	smtpd_reply(s, "250 2.0.0 Ok");
	return CMD_OK;
}

static int
do_noop(struct smtpd_session *s, char *args)
{
	smtpd_reply(s, "250 2.0.0 Ok");
	return CMD_OK;
}

static int
do_quit(struct smtpd_session *s, char *args)
{
	smtpd_reply(s, "221 2.0.0 Bye");
	s->done = 1;
	return CMD_OK;
}

static int
do_help(struct smtpd_session *s, char *args)
{
	smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH");
	return CMD_OK;
}

static int
do_vrfy(struct smtpd_session *s, char *args)
{
	if (cf.disable_vrfy_command) {
		smtpd_reply(s, "502 5.5.1 VRFY command is disabled");
		return CMD_ERROR;
	}
	smtpd_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
	return CMD_OK;
}

static int
do_expn(struct smtpd_session *s, char *args)
{
	smtpd_reply(s, "502 5.5.1 Error: command not implemented");
	return CMD_ERROR;
}

/* ---- the table ---- */

const struct smtpd_cmd smtpd_cmd_table[] = {
	{ "HELO", NULL, do_helo, CMD_ARGS },
	{ "EHLO", NULL, do_ehlo, CMD_ARGS },
	{ "MAIL", check_mail, do_mail, CMD_ARGS },
	{ "RCPT", check_rcpt, do_rcpt, CMD_ARGS },
	{ "DATA", check_data, do_data, CMD_NOARGS },
	{ "BDAT", NULL, do_bdat, 0 }, /* its checks must still read the chunk: in smtpd_bdat */
	{ "RSET", NULL, do_rset, CMD_NOARGS | CMD_JUNK },
	{ "NOOP", NULL, do_noop, CMD_JUNK },
	{ "QUIT", NULL, do_quit, CMD_NOARGS },
	{ "HELP", NULL, do_help, CMD_JUNK },
	{ "VRFY", NULL, do_vrfy, CMD_ARGS | CMD_JUNK },
	{ "EXPN", NULL, do_expn, 0 },
	{ "STARTTLS", smtpd_starttls_check, smtpd_starttls, 0 },
	{ "AUTH", smtpd_auth_check, smtpd_auth, CMD_ARGS },
};
const size_t smtpd_cmd_count = sizeof(smtpd_cmd_table) / sizeof(smtpd_cmd_table[0]);

_Static_assert(sizeof(smtpd_cmd_table) / sizeof(smtpd_cmd_table[0]) <= SMTPD_NCMD,
	       "raise SMTPD_NCMD for the per-command counters");

const struct smtpd_cmd *
smtpd_cmd_find(const char *verb, size_t len)
{
	size_t i;

	for (i = 0; i < smtpd_cmd_count; i++) {
		const char *v = smtpd_cmd_table[i].verb;

		if (strlen(v) == len && strncasecmp(v, verb, len) == 0)
			return &smtpd_cmd_table[i];
	}
	return NULL;
}

/* The reply to a line no command can be made of, or NULL if it may be one. */
static const char *
line_refusal(const char *line, size_t len)
{
	size_t i;

	if (memchr(line, '\0', len) != NULL)
		return "500 5.5.2 Error: NUL character in command";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return "500 5.5.2 Error: control character in command";
	}
	if (len == 0)
		return "500 5.5.2 Error: bad syntax";
	return NULL;
}

void
smtpd_cmd_dispatch(struct smtpd_session *s, char *line, size_t len)
{
	const struct smtpd_cmd *cmd;
	const char *refusal;
	size_t vlen, idx, alen;
	char *args;
	int r;

	/* Never trace credentials: AUTH's arguments stay out of the log. */
	if (len >= 5 && strncasecmp(line, "AUTH ", 5) == 0)
		log_debug("< %s[%s]: AUTH (arguments not logged)", s->name, s->ip);
	else
		log_debug("< %s[%s]: %.*s", s->name, s->ip, (int)len, line);
	if ((refusal = line_refusal(line, len)) != NULL) {
		smtpd_reply(s, "%s", refusal);
		s->unknown_total++;
		s->errors++;
		return;
	}
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	if ((cmd = smtpd_cmd_find(line, vlen)) == NULL) {
		smtpd_reply(s, "500 5.5.2 Error: command not recognized");
		s->where = "UNKNOWN";
		s->unknown_total++;
		s->errors++;
		return;
	}
	idx = (size_t)(cmd - smtpd_cmd_table);
	s->cmd_total[idx]++;
	s->where = cmd->verb;

	/* Arguments: after the spaces that follow the verb, trailing blanks trimmed. */
	args = line + vlen;
	while (*args == ' ')
		args++;
	alen = strlen(args);
	while (alen > 0 && (args[alen - 1] == ' ' || args[alen - 1] == '\t'))
		args[--alen] = '\0';

	if (cmd->check != NULL && (refusal = cmd->check(s)) != NULL) {
		smtpd_reply(s, "%s", refusal);
		s->errors++;
		return;
	}
	if (((cmd->flags & CMD_NOARGS) && alen > 0) || ((cmd->flags & CMD_ARGS) && alen == 0)) {
		if (strcmp(cmd->verb, "HELO") == 0 || strcmp(cmd->verb, "EHLO") == 0)
			smtpd_reply(s, "501 5.5.4 Syntax: %s hostname", cmd->verb);
		else if (strcmp(cmd->verb, "MAIL") == 0)
			smtpd_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		else if (strcmp(cmd->verb, "RCPT") == 0)
			smtpd_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		else if (strcmp(cmd->verb, "VRFY") == 0)
			smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
		else
			smtpd_reply(s, "501 5.5.4 Syntax: %s", cmd->verb);
		s->errors++;
		return;
	}
	r = cmd->proceed(s, args);
	if (r == CMD_OK)
		s->cmd_ok[idx]++;
	else if (r == CMD_ERROR)
		s->errors++;
	/* Past the junk limit, each NOOP/RSET/VRFY/HELP is an error too, so a
	 * client that only keeps the session open ends at the error limit. */
	if ((cmd->flags & CMD_JUNK) && ++s->junk > (unsigned long long)cf.smtpd_junk_command_limit && r != CMD_ERROR)
		s->errors++;
}
