/*
 * conf.c — the tern.conf parser.
 *
 * Every key lives in one table: name, type, where it is stored in `cf`, its
 * default, its allowed range and a one-line description.  Parsing stores
 * the raw text of string keys (kept so conf_finish can be run again after
 * an override) and converts typed keys at once, so a bad number is reported
 * at its own "file:line".  conf_finish then computes the host-dependent
 * defaults, expands $myhostname/$mydomain/$myorigin and checks the values
 * that only make sense together.  Lines go through the shared bounded line
 * reader; lines are capped at CONF_LINE_MAX and values at CONF_VALUE_MAX.
 *
 * Public: conf_defaults, conf_load, conf_load_string, conf_override,
 * conf_finish, conf_dump, conf_dump_key, conf_known.  Errors are returned
 * as text; nothing here exits.
 */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "lineread.h"
#include "proto_deliver.h"
#include "xalloc.h"

#ifndef TERN_LIBEXECDIR
#define TERN_LIBEXECDIR "/usr/local/libexec/tern"
#endif
#ifndef TERN_QUEUEDIR
#define TERN_QUEUEDIR "/var/spool/tern"
#endif

#define CONF_LINE_MAX 8192
#define CONF_VALUE_MAX 4096
#define CONF_NAME_MAX 64

struct tern_conf cf;

enum ktype { KT_STR, KT_LIST, KT_INT, KT_BOOL, KT_TIME, KT_SIZE, KT_MULTI };

/* Extra checks applied by conf_finish to the expanded string value. */
enum kcheck { KC_NONE, KC_HOST, KC_ABSPATH, KC_ABSPATH_OR_EMPTY, KC_NONEMPTY, KC_RELPATH };

/* Variables a string value may reference ($mynetworks: only the key that
 * defaults to it, which comes after mynetworks in the table). */
enum { V_HOST = 1, V_DOMAIN = 2, V_ORIGIN = 4, V_ALL = 7, V_NETWORKS = 8 };

#define DAY (24LL * 3600)

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	const char *def;
	long long min, max; /* numeric types */
	enum kcheck check;  /* string types */
	unsigned vars;      /* string types: which $variables may appear */
	const char *doc;
};

#define S(n, d, c, v, doc) { #n, KT_STR, offsetof(struct tern_conf, n), d, 0, 0, c, v, doc }
#define L(n, d, doc) { #n, KT_LIST, offsetof(struct tern_conf, n), d, 0, 0, KC_NONE, V_ALL, doc }
#define N(n, t, d, lo, hi, doc) { #n, t, offsetof(struct tern_conf, n), d, lo, hi, KC_NONE, 0, doc }
/* A key that may appear many times; each occurrence is kept with its line. */
#define M(n, doc) { #n, KT_MULTI, offsetof(struct tern_conf, n), "", 0, 0, KC_NONE, 0, doc }

static const struct key keys[] = {
	S(myhostname, "", KC_HOST, 0, "fully qualified name of this host (default: gethostname)"),
	S(mydomain, "", KC_HOST, V_HOST, "domain of this host (default: myhostname minus its first label)"),
	S(myorigin, "$myhostname", KC_HOST, V_HOST | V_DOMAIN, "domain appended to unqualified local senders"),
	L(mydestination, "$myhostname, localhost.$mydomain, localhost", "domains delivered locally"),
	L(mynetworks, "127.0.0.0/8, [::1]/128", "trusted client networks allowed to relay"),
	L(relay_domains, "", "remote domains this server accepts mail for"),
	S(relayhost, "", KC_NONE, V_ALL, "nexthop for all remote mail; empty: MX lookup"),
	S(transport_maps, "", KC_ABSPATH_OR_EMPTY, V_ALL, "transport table (FILE; lookups use FILE.cdb)"),
	S(alias_maps, "/etc/aliases", KC_ABSPATH_OR_EMPTY, V_ALL, "aliases table (FILE; lookups use FILE.cdb)"),
	S(queue_directory, TERN_QUEUEDIR, KC_ABSPATH, V_ALL, "root of the mail queue"),
	S(daemon_directory, TERN_LIBEXECDIR, KC_ABSPATH, V_ALL, "where the tern daemons are installed"),
	S(mail_owner, "tern", KC_NONEMPTY, V_ALL, "unprivileged user the daemons run as"),
	S(syslog_name, "tern", KC_NONEMPTY, V_ALL, "prefix of the syslog ident"),
	S(setgid_group, "ternpost", KC_NONEMPTY, V_ALL, "group of the setgid postdrop helper; owns maildrop/ and public/"),
	L(smtpd_listen, "0.0.0.0:25", "SMTP listen addresses (host:port)"),
	S(smtpd_banner, "$myhostname ESMTP tern", KC_NONEMPTY, V_ALL, "text after 220 in the greeting"),
	N(smtpd_timeout, KT_TIME, "300s", 1, DAY, "idle limit for an SMTP client"),
	N(smtpd_recipient_limit, KT_INT, "1000", 1, 100000, "recipients per message"),
	N(smtpd_min_idle, KT_INT, "2", 0, 10000, "idle smtpd processes kept ready"),
	N(message_size_limit, KT_SIZE, "10240000", 1024, 1LL << 40, "largest accepted message in bytes"),
	N(default_process_limit, KT_INT, "100", 1, 10000, "processes per service"),
	N(max_use, KT_INT, "100", 1, 1000000, "connections a child serves before it exits"),
	N(max_idle, KT_TIME, "100s", 1, DAY, "how long an idle child waits before it exits"),
	N(queue_run_delay, KT_TIME, "300s", 1, DAY, "interval between deferred-queue scans"),
	N(minimal_backoff, KT_TIME, "300s", 1, 30 * DAY, "shortest retry delay"),
	N(maximal_backoff, KT_TIME, "4000s", 1, 30 * DAY, "longest retry delay"),
	N(maximal_queue_lifetime, KT_TIME, "5d", 0, 100 * DAY, "age at which deferred mail is bounced"),
	N(bounce_queue_lifetime, KT_TIME, "5d", 0, 100 * DAY, "the same for bounces"),
	N(delay_warning_time, KT_TIME, "0s", 0, 100 * DAY, "send a delay DSN after this long; 0: never"),
	N(qmgr_message_active_limit, KT_INT, "1000", 10, 100000, "messages the queue manager holds in memory"),
	S(virtual_alias_maps, "", KC_ABSPATH_OR_EMPTY, V_ALL, "virtual alias table (FILE; lookups use FILE.cdb)"),
	L(virtual_alias_domains, "", "domains whose addresses exist only as virtual_alias_maps keys"),
	N(default_destination_concurrency_limit, KT_INT, "20", 1, 1000, "parallel deliveries per destination"),
	N(local_destination_concurrency_limit, KT_INT, "2", 1, 1000, "parallel local deliveries per user"),
	N(default_destination_recipient_limit, KT_INT, "50", 1, DELIVER_MAX_RCPT,
	  "recipients per delivery request"),
	S(home_mailbox, "Maildir/", KC_RELPATH, V_ALL, "mailbox relative to home; a trailing / means Maildir"),
	S(recipient_delimiter, "+", KC_NONE, V_ALL, "characters separating user and extension"),
	S(local_mailbox_base, "", KC_ABSPATH_OR_EMPTY, V_ALL, "if set: deliver to base/USER/Maildir/ without Unix accounts"),
	S(mail_spool_directory, "/var/mail", KC_ABSPATH, V_ALL, "mbox spool directory (home_mailbox empty)"),
	N(mailbox_size_limit, KT_SIZE, "51200000", 0, 1LL << 40, "largest mbox/file mailbox in bytes; 0: no limit"),
	N(deliver_lock_attempts, KT_INT, "40", 1, 1000, "tries to lock an mbox, 250 ms apart"),
	N(stale_lock_time, KT_TIME, "300s", 1, DAY, "age at which an mbox dotlock is removed as stale"),
	S(default_privs, "nobody", KC_NONEMPTY, V_ALL, "user that runs alias commands and file deliveries"),
	S(forward_path, ".forward", KC_RELPATH, V_ALL, "forward file relative to the home directory; empty: none"),
	L(allow_mail_to_commands, "alias, forward", "where |command targets are allowed (alias, forward, include)"),
	L(allow_mail_to_files, "alias, forward", "where /file targets are allowed (alias, forward, include)"),
	N(command_time_limit, KT_TIME, "1000s", 1, DAY, "time limit of a pipe delivery"),
	S(virtual_mailbox_base, "", KC_ABSPATH_OR_EMPTY, V_ALL, "directory the virtual mailbox paths are relative to"),
	S(virtual_mailbox_maps, "", KC_ABSPATH_OR_EMPTY, V_ALL, "virtual mailbox table (FILE; lookups use FILE.cdb)"),
	L(virtual_mailbox_domains, "", "domains whose users have virtual mailboxes"),
	S(virtual_uid_maps, "", KC_NONE, V_ALL, "uid of virtual mailboxes: static:N"),
	S(virtual_gid_maps, "", KC_NONE, V_ALL, "gid of virtual mailboxes: static:N"),
	N(smtp_connect_timeout, KT_TIME, "30s", 1, 3600, "TCP connect limit for remote delivery"),
	N(smtp_helo_timeout, KT_TIME, "300s", 1, DAY, "wait for the greeting and the EHLO/HELO reply"),
	N(smtp_mail_timeout, KT_TIME, "300s", 1, DAY, "wait for the MAIL FROM reply"),
	N(smtp_rcpt_timeout, KT_TIME, "300s", 1, DAY, "wait for each RCPT TO reply"),
	N(smtp_data_init_timeout, KT_TIME, "120s", 1, DAY, "wait for the DATA reply"),
	N(smtp_data_xfer_timeout, KT_TIME, "180s", 1, DAY, "limit for each write of message content"),
	N(smtp_data_done_timeout, KT_TIME, "600s", 1, DAY, "wait for the reply to the end of data"),
	N(smtp_quit_timeout, KT_TIME, "300s", 1, DAY, "wait for the QUIT reply"),
	N(smtp_rset_timeout, KT_TIME, "20s", 1, DAY, "wait for the RSET reply (connection reuse)"),
	N(smtp_connection_reuse_count_limit, KT_INT, "100", 1, 100000, "messages per reused SMTP connection"),
	N(smtp_connection_reuse_time_limit, KT_TIME, "300s", 0, DAY, "age after which an SMTP connection is not reused"),
	S(smtp_address_preference, "any", KC_NONEMPTY, 0, "try IPv4 or IPv6 addresses first: any, ipv4, ipv6"),
	S(resolver, "", KC_NONE, 0, "nameserver for remote delivery lookups (ip or ip:port); empty: resolv.conf"),
	L(debug_peer_list, "", "domains, hosts or IPs whose SMTP conversation send logs"),
	N(smtputf8_enable, KT_BOOL, "yes", 0, 1, "offer SMTPUTF8 (UTF-8 addresses)"),
	N(strict_rfc821_envelopes, KT_BOOL, "no", 0, 1, "reject MAIL/RCPT addresses without < >"),
	S(bare_newline, "normalize", KC_NONEMPTY, 0, "bare CR or LF in message content: normalize or reject"),
	N(disable_vrfy_command, KT_BOOL, "no", 0, 1, "answer VRFY with 502"),
	N(smtpd_peername_lookup, KT_BOOL, "yes", 0, 1, "look up the client's verified reverse name"),
	N(smtpd_greet_pause, KT_TIME, "0s", 0, 60, "wait before the greeting; reject clients that talk first"),
	N(smtpd_hard_error_limit, KT_INT, "20", 1, 1000, "errors before smtpd disconnects with 421"),
	N(smtpd_junk_command_limit, KT_INT, "100", 1, 100000, "NOOP/RSET/VRFY/HELP before each counts as an error"),
	N(smtpd_text_line_limit, KT_INT, "1000", 0, 1000000, "longest message line with CRLF; 0: no limit"),
	N(header_size_limit, KT_SIZE, "102400", 1024, 1LL << 30, "largest message header in bytes"),
	N(hopcount_limit, KT_INT, "50", 1, 1000, "Received: headers before a message is refused"),
	N(smtpd_min_data_rate, KT_INT, "500", 0, 1LL << 30, "bytes/s a client must keep up in DATA/BDAT; 0: off"),
	L(submission_listen, "", "submission (587) listen addresses: AUTH required before MAIL; empty: none"),
	L(smtps_listen, "", "implicit-TLS submission (465) listen addresses; empty: none"),
	S(smtpd_tls_cert_file, "", KC_ABSPATH_OR_EMPTY, V_ALL, "server certificate chain (PEM); empty: no TLS"),
	S(smtpd_tls_key_file, "", KC_ABSPATH_OR_EMPTY, V_ALL, "server private key (PEM); empty: in the cert file"),
	S(smtpd_tls_security_level, "may", KC_NONEMPTY, 0, "none, may (offer STARTTLS) or encrypt (require it)"),
	S(smtpd_tls_min_version, "TLSv1.2", KC_NONEMPTY, 0, "oldest TLS version smtpd accepts"),
	S(smtpd_tls_cipherlist, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS", KC_NONE, 0,
	  "TLS 1.2 cipher list (OpenSSL syntax)"),
	S(smtpd_tls_ciphersuites, "", KC_NONE, 0, "TLS 1.3 cipher suites; empty: OpenSSL's default"),
	N(smtpd_tls_ticket_lifetime, KT_TIME, "12h", 0, 30 * DAY, "session ticket key rotation; 0: never"),
	N(smtpd_sasl_auth_enable, KT_BOOL, "no", 0, 1, "offer AUTH on smtpd_listen (always on for submission/smtps)"),
	N(smtpd_tls_auth_only, KT_BOOL, "yes", 0, 1, "offer AUTH only inside TLS"),
	N(smtpd_sasl_plaintext_loopback, KT_BOOL, "no", 0, 1, "also offer AUTH without TLS to loopback clients"),
	S(smtpd_sasl_password_maps, "", KC_ABSPATH_OR_EMPTY, V_ALL, "user -> crypt(3) hash table (ternctl passwd)"),
	S(smtpd_sender_login_maps, "", KC_ABSPATH_OR_EMPTY, V_ALL, "sender address or @domain -> allowed logins"),
	N(smtpd_auth_failure_limit, KT_INT, "3", 1, 1000, "failed AUTH attempts before 421"),
	N(smtpd_auth_failure_delay, KT_TIME, "1s", 0, 60, "delay before each 535"),
	S(smtp_tls_security_level, "may", KC_NONEMPTY, 0, "send: none, may, encrypt or verify"),
	S(smtp_tls_policy_maps, "", KC_ABSPATH_OR_EMPTY, V_ALL, "nexthop -> TLS security level table"),
	S(smtp_tls_CAfile, "", KC_ABSPATH_OR_EMPTY, V_ALL, "CA certificates for verify; empty: system store"),
	S(smtp_sasl_password_maps, "", KC_ABSPATH_OR_EMPTY, V_ALL, "nexthop -> user:password table for client AUTH"),
	N(smtpd_client_connection_count_limit, KT_INT, "50", 0, 100000,
	  "simultaneous sessions per client address per smtpd service; 0: no limit"),
	{ "smtpd_client_event_limit_exceptions", KT_LIST, offsetof(struct tern_conf, smtpd_client_event_limit_exceptions),
	  "$mynetworks", 0, 0, KC_NONE, V_ALL | V_NETWORKS, "clients (CIDR list) exempt from the per-client limits" },
	M(service, "master service table entry (repeatable; none: the built-in table)"),
};

#undef S
#undef L
#undef N
#undef M

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Where each key's current value came from, and its raw text. */
struct kstate {
	char *raw; /* string keys: value as written, before $-expansion */
	int line;  /* line in `origin`, 0 when not set from a file */
	int overridden;
};

static struct kstate ks[NKEYS];
static char *origin; /* name of the last file loaded, for messages */

static const struct key *key_find(const char *name, size_t n)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(keys[i].name) == n && memcmp(keys[i].name, name, n) == 0)
			return &keys[i];
	return NULL;
}

static struct kstate *state_of(const struct key *k)
{
	return &ks[k - keys];
}

static char **str_field(const struct key *k)
{
	return (char **)((char *)&cf + k->off);
}

static long long *num_field(const struct key *k)
{
	return (long long *)((char *)&cf + k->off);
}

static int *bool_field(const struct key *k)
{
	return (int *)((char *)&cf + k->off);
}

static void set_string(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

static struct conf_lines *multi_field(const struct key *k)
{
	return (struct conf_lines *)((char *)&cf + k->off);
}

/* Add one occurrence of a repeatable key; an empty value (the default)
 * clears the list. */
static void multi_add(const struct key *k, const char *v, int line)
{
	struct conf_lines *l = multi_field(k);

	if (*v == '\0') {
		for (size_t i = 0; i < l->n; i++)
			free(l->v[i].value);
		free(l->v);
		l->v = NULL;
		l->n = 0;
		return;
	}
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n].value = xstrdup(v);
	l->v[l->n].line = line;
	l->n++;
}

/* Leading decimal digits of s into *out; NULL on no digits or overflow. */
static const char *parse_digits(const char *s, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return NULL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return NULL;
		v = v * 10 + d;
	}
	*out = v;
	return p;
}

/* Number with an optional one-letter unit from units/mults. */
static int parse_unit(const char *s, const char *units, const unsigned long long *mults, long long *out)
{
	unsigned long long v, m = 1;
	const char *p = parse_digits(s, &v);
	const char *u;

	if (p == NULL)
		return -1;
	if (*p != '\0') {
		if (units == NULL || p[1] != '\0' || (u = strchr(units, *p)) == NULL)
			return -1;
		m = mults[u - units];
	}
	if (v > (unsigned long long)LLONG_MAX / m)
		return -1;
	*out = (long long)(v * m);
	return 0;
}

static int parse_typed(const struct key *k, const char *v, long long *out, char *why, size_t whysize)
{
	static const unsigned long long tmul[] = { 1, 60, 3600, 86400, 604800 };
	static const unsigned long long smul[] = { 1ULL << 10, 1ULL << 10, 1ULL << 20, 1ULL << 20,
						   1ULL << 30, 1ULL << 30 };
	int rc = -1;
	const char *what = "int";

	switch (k->type) {
	case KT_INT:
		rc = parse_unit(v, NULL, NULL, out);
		break;
	case KT_TIME:
		what = "time";
		rc = parse_unit(v, "smhdw", tmul, out);
		break;
	case KT_SIZE:
		what = "size";
		rc = parse_unit(v, "kKmMgG", smul, out);
		break;
	case KT_BOOL:
		what = "bool";
		if (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0) {
			*out = v[0] == 'y';
			rc = 0;
		}
		break;
	default:
		break;
	}
	if (rc < 0) {
		snprintf(why, whysize, "bad %s value \"%.64s\"%s", what, v,
			 k->type == KT_BOOL ? " (expected yes or no)" : "");
		return -1;
	}
	if (*out < k->min || *out > k->max) {
		snprintf(why, whysize, "value %.64s out of range (%lld..%lld)", v, k->min, k->max);
		return -1;
	}
	return 0;
}

/* Store v as k's value: strings raw, numbers converted and range-checked. */
static int key_set(const struct key *k, const char *v, char *why, size_t whysize)
{
	long long n;

	if (strlen(v) > CONF_VALUE_MAX) {
		snprintf(why, whysize, "value too long (max %d bytes)", CONF_VALUE_MAX);
		return -1;
	}
	if (k->type == KT_MULTI) {
		multi_add(k, v, 0);
		return 0;
	}
	if (k->type == KT_STR || k->type == KT_LIST) {
		set_string(&state_of(k)->raw, v);
		set_string(str_field(k), v);
		return 0;
	}
	if (parse_typed(k, v, &n, why, whysize) < 0)
		return -1;
	if (k->type == KT_BOOL)
		*bool_field(k) = (int)n;
	else
		*num_field(k) = n;
	return 0;
}

void conf_defaults(void)
{
	char why[256];

	for (size_t i = 0; i < NKEYS; i++) {
		if (key_set(&keys[i], keys[i].def, why, sizeof(why)) < 0)
			abort(); /* a default that does not parse is a bug in the table */
		ks[i].line = 0;
		ks[i].overridden = 0;
	}
}

int conf_known(const char *name)
{
	return key_find(name, strlen(name)) != NULL;
}

/* Reader over a string, for conf_load_string. */
struct memsrc {
	const char *p;
	size_t n, off;
};

static ssize_t mem_read(void *ctx, void *p, size_t n)
{
	struct memsrc *m = ctx;
	size_t left = m->n - m->off;

	if (n > left)
		n = left;
	memcpy(p, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

/* Parser state while reading one file. */
struct parser {
	const char *name;
	const struct key *cur; /* key whose value is being collected */
	int curline;
	struct buf val;
	char *err;
	size_t errsize;
};

static int perr(struct parser *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(struct parser *ps, int line, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (ps->errsize > 0)
		snprintf(ps->err, ps->errsize, "%s:%d: %s", ps->name, line, why);
	return -1;
}

/* Apply the value collected for the current key. */
static int flush_key(struct parser *ps)
{
	char why[512];

	if (ps->cur == NULL)
		return 0;
	if (ps->cur->type == KT_MULTI) {
		if (ps->val.len == 0)
			return perr(ps, ps->curline, "%s: empty value", ps->cur->name);
		multi_add(ps->cur, ps->val.data, ps->curline);
		ps->cur = NULL;
		return 0;
	}
	if (key_set(ps->cur, ps->val.data, why, sizeof(why)) < 0)
		return perr(ps, ps->curline, "%s: %s", ps->cur->name, why);
	state_of(ps->cur)->line = ps->curline;
	ps->cur = NULL;
	return 0;
}

static int is_ws(int c)
{
	return c == ' ' || c == '\t';
}

static int is_namechar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Drop trailing blanks of s (length *n). */
static void rtrim(const char *s, size_t *n)
{
	while (*n > 0 && is_ws(s[*n - 1]))
		(*n)--;
}

/* A "key = value" line (s has no leading blank). */
static int parse_key_line(struct parser *ps, const char *s, size_t n, int lineno)
{
	size_t i = 0, vlen;
	const struct key *k;
	struct kstate *st;

	while (i < n && is_namechar((unsigned char)s[i]))
		i++;
	if (i == 0)
		return perr(ps, lineno, "expected \"key = value\"");
	if (i > CONF_NAME_MAX)
		return perr(ps, lineno, "key name too long");
	size_t namelen = i;
	while (i < n && is_ws(s[i]))
		i++;
	if (i >= n || s[i] != '=')
		return perr(ps, lineno, "missing '=' after \"%.*s\"", (int)namelen, s);
	k = key_find(s, namelen);
	if (k == NULL)
		return perr(ps, lineno, "unknown key \"%.*s\"", (int)namelen, s);
	st = state_of(k);
	if (st->line != 0 && k->type != KT_MULTI)
		return perr(ps, lineno, "duplicate key \"%s\" (first set on line %d)", k->name, st->line);
	for (i++; i < n && is_ws(s[i]); i++)
		;
	vlen = n - i;
	rtrim(s + i, &vlen);
	buf_reset(&ps->val);
	if (buf_append(&ps->val, s + i, vlen) < 0)
		return perr(ps, lineno, "%s: value too long (max %d bytes)", k->name, CONF_VALUE_MAX);
	ps->cur = k;
	ps->curline = lineno;
	/* Mark it now so a repeat is caught even before the value is flushed. */
	st->line = lineno;
	return 0;
}

static int parse_line(struct parser *ps, const char *s, size_t n, int lineno)
{
	size_t i = 0;

	if (memchr(s, '\0', n) != NULL)
		return perr(ps, lineno, "NUL byte in line");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return perr(ps, lineno, "control character 0x%02x in line", c);
	}
	for (i = 0; i < n && is_ws(s[i]); i++)
		;
	if (i == n || s[i] == '#')
		return 0;
	if (i > 0) {
		size_t len = n - i;
		if (ps->cur == NULL)
			return perr(ps, lineno, "continuation line before any key");
		rtrim(s + i, &len);
		if ((ps->val.len > 0 && buf_putc(&ps->val, ' ') < 0) || buf_append(&ps->val, s + i, len) < 0)
			return perr(ps, lineno, "%s: value too long (max %d bytes)", ps->cur->name,
				    CONF_VALUE_MAX);
		return 0;
	}
	if (flush_key(ps) < 0)
		return -1;
	return parse_key_line(ps, s, n, lineno);
}

static int parse_reader(struct linereader *lr, const char *name, char *err, size_t errsize)
{
	struct parser ps = { name, NULL, 0, { 0 }, err, errsize };
	struct buf line;
	enum lr_ending ending;
	int lineno = 0, rc = 0;

	buf_init(&line, CONF_LINE_MAX);
	buf_init(&ps.val, CONF_VALUE_MAX);
	for (;;) {
		enum lr_result r = lr_getline(lr, &line, &ending);
		if (r == LR_EOF)
			break;
		lineno++;
		if (r == LR_ERROR) {
			rc = perr(&ps, lineno, "read error: %s", strerror(errno));
			break;
		}
		if (r == LR_TOOLONG) {
			rc = perr(&ps, lineno, "line too long (max %d bytes)", CONF_LINE_MAX);
			break;
		}
		if ((rc = parse_line(&ps, line.data, line.len, lineno)) < 0)
			break;
	}
	if (rc == 0)
		rc = flush_key(&ps);
	buf_free(&line);
	buf_free(&ps.val);
	return rc;
}

static void start_load(const char *name)
{
	conf_defaults();
	free(origin);
	origin = xstrdup(name);
}

int conf_load(const char *path, char *err, size_t errsize)
{
	struct linereader lr;
	int fd, rc;

	start_load(path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	lr_init_fd(&lr, fd, CONF_LINE_MAX, 0, -1);
	rc = parse_reader(&lr, path, err, errsize);
	lr_free(&lr);
	close(fd);
	if (rc < 0)
		conf_defaults();
	return rc;
}

int conf_load_string(const char *text, const char *name, char *err, size_t errsize)
{
	struct linereader lr;
	struct memsrc m = { text, strlen(text), 0 };
	int rc;

	start_load(name);
	lr_init(&lr, mem_read, &m, CONF_LINE_MAX, 0);
	rc = parse_reader(&lr, name, err, errsize);
	lr_free(&lr);
	if (rc < 0)
		conf_defaults();
	return rc;
}

int conf_override(const char *kv, char *err, size_t errsize)
{
	const char *eq = strchr(kv, '=');
	const struct key *k;
	char why[512];
	char *v;
	size_t n;

	if (eq == NULL) {
		snprintf(err, errsize, "-o %s: missing '='", kv);
		return -1;
	}
	n = (size_t)(eq - kv);
	while (n > 0 && is_ws(kv[n - 1]))
		n--;
	k = key_find(kv, n);
	if (k == NULL) {
		snprintf(err, errsize, "-o %s: unknown key \"%.*s\"", kv, (int)n, kv);
		return -1;
	}
	for (eq++; is_ws(*eq); eq++)
		;
	for (const char *p = eq; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			snprintf(err, errsize, "-o %s: control character in value", k->name);
			return -1;
		}
	}
	n = strlen(eq);
	rtrim(eq, &n);
	v = xstrndup(eq, n);
	if (key_set(k, v, why, sizeof(why)) < 0) {
		snprintf(err, errsize, "-o %s: %s", k->name, why);
		free(v);
		return -1;
	}
	free(v);
	state_of(k)->overridden = 1;
	return 0;
}

/* "file:line: key: why", "-o key: why" or "key: why" (a default). */
static int key_error(const struct key *k, char *err, size_t errsize, const char *why)
{
	const struct kstate *st = state_of(k);

	if (st->overridden)
		snprintf(err, errsize, "-o %s: %s", k->name, why);
	else if (st->line > 0)
		snprintf(err, errsize, "%s:%d: %s: %s", origin ? origin : "?", st->line, k->name, why);
	else
		snprintf(err, errsize, "%s (default): %s", k->name, why);
	return -1;
}

/* Value of variable name (length n) allowed by vars; NULL when not allowed. */
static const char *var_value(const char *name, size_t n, unsigned vars)
{
	static const struct {
		const char *name;
		unsigned bit;
		char **val;
	} tab[] = {
		{ "myhostname", V_HOST, &cf.myhostname },
		{ "mydomain", V_DOMAIN, &cf.mydomain },
		{ "myorigin", V_ORIGIN, &cf.myorigin },
		{ "mynetworks", V_NETWORKS, &cf.mynetworks },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if ((vars & tab[i].bit) && strlen(tab[i].name) == n && memcmp(tab[i].name, name, n) == 0)
			return *tab[i].val;
	return NULL;
}

/* Expand $name, ${name} and $$ in the raw value of k into out. */
static int expand(const struct key *k, struct buf *out, char *why, size_t whysize)
{
	const char *p = state_of(k)->raw;

	buf_reset(out);
	while (*p) {
		const char *name, *val;
		size_t n = 0;
		int brace;

		if (*p != '$') {
			if (buf_putc(out, *p++) < 0)
				goto toolong;
			continue;
		}
		p++;
		if (*p == '$') {
			if (buf_putc(out, *p++) < 0)
				goto toolong;
			continue;
		}
		brace = *p == '{';
		name = p + brace;
		while (is_namechar((unsigned char)name[n]))
			n++;
		if (n == 0 || (brace && name[n] != '}')) {
			snprintf(why, whysize, "bad '$' (write $$ for a literal '$')");
			return -1;
		}
		val = var_value(name, n, k->vars);
		if (val == NULL) {
			snprintf(why, whysize, "$%.*s cannot be used here", (int)(n > 64 ? 64 : n), name);
			return -1;
		}
		if (buf_puts(out, val) < 0)
			goto toolong;
		p = name + n + brace;
	}
	return 0;
toolong:
	snprintf(why, whysize, "value too long after expansion (max %d bytes)", CONF_VALUE_MAX);
	return -1;
}

static int valid_hostname(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 255)
		return 0;
	for (const char *p = s; *p; p++) {
		int c = (unsigned char)*p;
		if (c == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(is_namechar(c) && c != '_') && c != '-')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

static int check_value(const struct key *k, const char *v, char *why, size_t whysize)
{
	switch (k->check) {
	case KC_HOST:
		if (!valid_hostname(v)) {
			snprintf(why, whysize, "\"%.300s\" is not a valid host or domain name", v);
			return -1;
		}
		break;
	case KC_ABSPATH_OR_EMPTY:
		if (*v == '\0')
			break;
		/* fall through */
	case KC_ABSPATH:
		if (*v != '/') {
			snprintf(why, whysize, "must be an absolute path");
			return -1;
		}
		break;
	case KC_RELPATH:
		/* Empty is allowed: home_mailbox "" means mbox, forward_path "" none. */
		if (*v == '/' || strstr(v, "..") != NULL) {
			snprintf(why, whysize, "must be a path relative to the home directory, without \"..\"");
			return -1;
		}
		break;
	case KC_NONEMPTY:
		if (*v == '\0') {
			snprintf(why, whysize, "must not be empty");
			return -1;
		}
		break;
	case KC_NONE:
		break;
	}
	return 0;
}

/* gethostname(), or "localhost" when it is empty or unusable. */
static void default_hostname(struct buf *out)
{
	char host[256];

	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0' || !valid_hostname(host))
		str_copy(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	buf_set(out, host);
}

/* Expand, compute and check one string key. */
static int finish_string(const struct key *k, struct buf *tmp, char *err, size_t errsize)
{
	char why[512];

	if (expand(k, tmp, why, sizeof(why)) < 0)
		return key_error(k, err, errsize, why);
	if (tmp->len == 0 && k->off == offsetof(struct tern_conf, myhostname))
		default_hostname(tmp);
	if (tmp->len == 0 && k->off == offsetof(struct tern_conf, mydomain)) {
		const char *dot = strchr(cf.myhostname, '.');
		buf_set(tmp, dot != NULL && dot[1] != '\0' ? dot + 1 : "localdomain");
	}
	if (check_value(k, tmp->data, why, sizeof(why)) < 0)
		return key_error(k, err, errsize, why);
	set_string(str_field(k), tmp->data);
	return 0;
}

/* 1 when v is one of the space-separated words (issue 9's enumerations). */
static int word_in(const char *v, const char *words)
{
	size_t n = strlen(v);

	for (const char *w = words; *w;) {
		size_t wl = strcspn(w, " ");

		if (wl == n && n > 0 && strncmp(w, v, n) == 0)
			return 1;
		w += wl;
		while (*w == ' ')
			w++;
	}
	return 0;
}

static int finish_cross(char *err, size_t errsize)
{
	char why[256];

	if (cf.minimal_backoff > cf.maximal_backoff) {
		snprintf(why, sizeof(why), "minimal_backoff (%llds) is larger than maximal_backoff (%llds)",
			 cf.minimal_backoff, cf.maximal_backoff);
		return key_error(key_find("minimal_backoff", 15), err, errsize, why);
	}
	if (cf.smtpd_min_idle > cf.default_process_limit) {
		snprintf(why, sizeof(why), "smtpd_min_idle (%lld) is larger than default_process_limit (%lld)",
			 cf.smtpd_min_idle, cf.default_process_limit);
		return key_error(key_find("smtpd_min_idle", 14), err, errsize, why);
	}
	if (strcmp(cf.bare_newline, "normalize") != 0 && strcmp(cf.bare_newline, "reject") != 0) {
		snprintf(why, sizeof(why), "must be \"normalize\" or \"reject\"");
		return key_error(key_find("bare_newline", 12), err, errsize, why);
	}
	if (!word_in(cf.smtpd_tls_security_level, "none may encrypt")) {
		snprintf(why, sizeof(why), "must be none, may or encrypt");
		return key_error(key_find("smtpd_tls_security_level", 24), err, errsize, why);
	}
	if (!word_in(cf.smtp_tls_security_level, "none may encrypt verify")) {
		snprintf(why, sizeof(why), "must be none, may, encrypt or verify");
		return key_error(key_find("smtp_tls_security_level", 23), err, errsize, why);
	}
	if (!word_in(cf.smtpd_tls_min_version, "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3")) {
		snprintf(why, sizeof(why), "must be TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3");
		return key_error(key_find("smtpd_tls_min_version", 21), err, errsize, why);
	}
	return 0;
}

int conf_finish(char *err, size_t errsize)
{
	struct buf tmp;
	int rc = 0;

	if (ks[0].raw == NULL)
		conf_defaults();
	buf_init(&tmp, CONF_VALUE_MAX);
	/* Table order matters: myhostname, mydomain and myorigin come first,
	 * so every later value sees their final form. */
	for (size_t i = 0; i < NKEYS && rc == 0; i++)
		if (keys[i].type == KT_STR || keys[i].type == KT_LIST)
			rc = finish_string(&keys[i], &tmp, err, errsize);
	buf_free(&tmp);
	if (rc == 0)
		rc = finish_cross(err, errsize);
	return rc;
}

static void dump_one(int fd, const struct key *k)
{
	switch (k->type) {
	case KT_STR:
	case KT_LIST:
		dprintf(fd, "%s = %s\n", k->name, *str_field(k) ? *str_field(k) : "");
		break;
	case KT_BOOL:
		dprintf(fd, "%s = %s\n", k->name, *bool_field(k) ? "yes" : "no");
		break;
	case KT_TIME:
		dprintf(fd, "%s = %llds\n", k->name, *num_field(k));
		break;
	case KT_INT:
	case KT_SIZE:
		dprintf(fd, "%s = %lld\n", k->name, *num_field(k));
		break;
	case KT_MULTI:
		for (size_t i = 0; i < multi_field(k)->n; i++)
			dprintf(fd, "%s = %s\n", k->name, multi_field(k)->v[i].value);
		break;
	}
}

void conf_dump(int fd)
{
	for (size_t i = 0; i < NKEYS; i++)
		dump_one(fd, &keys[i]);
}

const char *conf_file(void)
{
	return origin ? origin : "(defaults)";
}

int conf_dump_key(int fd, const char *name)
{
	const struct key *k = key_find(name, strlen(name));

	if (k == NULL)
		return -1;
	dump_one(fd, k);
	return 0;
}
