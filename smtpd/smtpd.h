/*
 * smtpd — the SMTP receiver's session state, shared by its modules.
 *
 *   smtpd.c        the session loop (smtpd_session_run) and smtpd_serve,
 *                  the entry point the prefork skeleton calls per connection
 *   smtpd_cmd.c    the command table {verb, check, proceed, flags} and the
 *                  HELO/EHLO/MAIL/RCPT/RSET/NOOP/QUIT/HELP/VRFY/EXPN handlers
 *   smtpd_check.c  recipient policy: local domains, relay domains, mynetworks
 *   smtpd_data.c   DATA: reading, dot-unstuffing, bare CR/LF handling
 *   smtpd_bdat.c   BDAT (RFC 3030 CHUNKING): chunks of exact byte counts
 *   smtpd_content.c the content sink both feed: the Received: header, the
 *                  queue file, the content limits and the final reply
 *   smtpd_esmtp.c  ESMTP parameter parsing (SIZE, BODY, SMTPUTF8, RET,
 *                  ENVID, NOTIFY, ORCPT), pure functions the fuzzer drives
 *   smtpd_peer.c   the client's forward-confirmed reverse name and its
 *                  session count (the per-client connection cap)
 *   smtpd_stream.c buffered connection I/O with deadlines (TLS slots in here)
 *   smtpd_tls.c    STARTTLS, implicit TLS (465), the service mode
 *   smtpd_auth.c   AUTH PLAIN/LOGIN, the password table, sender login maps
 *
 * Everything the client sends arrives through the one bounded line reader
 * (s->lr) and every reply leaves through s->st; nothing here touches a
 * socket directly, which is what lets the unit tests script whole sessions.
 */
#ifndef TERN_SMTPD_H
#define TERN_SMTPD_H

#include <stddef.h>
#include <sys/socket.h>

#include "addr.h"
#include "buf.h"
#include "lineread.h"
#include "qfile.h"
#include "smtpd_stream.h"

#define SMTPD_CMD_MAX 510        /* command line octets without CRLF (RFC 5321 4.5.3.1.4: 512 with it) */
#define SMTPD_DATA_PIECE 4096    /* content is read in pieces of at most this many bytes */
#define SMTPD_RCPT_OVERSHOOT 1000 /* 452s past the recipient limit before they count as errors */
#define SMTPD_HELO_MAX 255       /* longest HELO/EHLO argument accepted */
#define SMTPD_IP_MAX 64
#define SMTPD_NAME_MAX 256
#define SMTPD_NCMD 16            /* room in the per-command counters */

enum smtpd_proto { SMTPD_PROTO_NONE = 0, SMTPD_PROTO_SMTP, SMTPD_PROTO_ESMTP };

/*
 * Where message content goes, for DATA and BDAT alike: the caller hands it
 * pieces of lines with their line ends already decided (CRLF, and bare CR
 * or LF, are all line ends here; the caller sets `bare` when it saw one);
 * the sink writes them with LF line ends and keeps the content limits.
 */
struct smtpd_content {
	struct qf_writer w;
	unsigned long long size;     /* client bytes, counted with CRLF line ends */
	unsigned long long written;  /* bytes put into the queue file's content */
	unsigned long long line_len; /* octets of the current line so far */
	unsigned long long header_bytes;
	unsigned hops;               /* Received: headers from the client */
	char head[10];               /* first bytes of the current line */
	size_t headlen;
	int in_header;               /* still in the header section */
	int line_kind;               /* in the header: what the current line is so far */
	size_t name_len;             /* length of its field name */
	int fields;                  /* header fields seen (a continuation needs one) */
	int too_big, bare, long_line, header_big;
	int pending_cr;              /* BDAT: a chunk ended with CR */
};

struct smtpd_session {
	struct smtpd_stream *st;
	struct linereader lr;
	struct buf line;

	/* the client */
	char ip[SMTPD_IP_MAX];       /* "192.0.2.1", "2001:db8::1" */
	char name[SMTPD_NAME_MAX];   /* verified reverse name or "unknown" */
	int trusted;                 /* ip is in mynetworks */
	enum smtpd_proto proto;      /* NONE until HELO/EHLO */
	char helo[SMTPD_HELO_MAX + 1]; /* sanitised HELO/EHLO argument */

	/* the mail transaction (valid while in_mail) */
	int in_mail;
	struct qf_envelope env;      /* sender, recipients, flags */
	unsigned long long declared_size; /* MAIL FROM SIZE=, 0 if not given */
	unsigned rcpt_overshoot;     /* RCPTs refused by the recipient limit */
	struct smtpd_content *bdat;  /* BDAT in progress (owned), NULL otherwise */

	/* the session */
	int errors;                  /* error replies so far */
	unsigned junk;               /* NOOP/RSET/VRFY/HELP so far */
	int done;                    /* end the session after this command */
	const char *where;           /* last command verb, for "lost connection after X" */
	unsigned cmd_ok[SMTPD_NCMD]; /* per command-table entry: successes ... */
	unsigned cmd_total[SMTPD_NCMD]; /* ... and attempts, for the disconnect line */
	unsigned unknown_total;      /* unrecognised commands */

	/* AUTH (smtpd_auth.c); TLS state lives in the stream (st->tls) */
	char sasl_user[256];         /* authenticated login, "" if none */
	const char *sasl_method;     /* "PLAIN" / "LOGIN" while sasl_user is set */
	unsigned auth_failures;      /* failed AUTH attempts this session */
};

/* Which service this process serves, from the address of its listening
 * socket (smtpd_tls.c): port 25 style, submission (AUTH required before
 * MAIL) or smtps (implicit TLS, AUTH required). */
enum smtpd_mode { SMTPD_MODE_SMTP = 0, SMTPD_MODE_SUBMISSION, SMTPD_MODE_SMTPS };
extern enum smtpd_mode smtpd_mode;

/* ---- smtpd.c ---- */

/* Once per process, after the configuration is loaded: check smtpd's keys
 * and open the recipient tables (log_fatal on failure). */
void smtpd_init(void);

/* Serve one accepted connection (the prefork skeleton's callback). */
void smtpd_serve(int fd, const struct sockaddr *peer, socklen_t peerlen);
/* Run a whole SMTP session over an already set-up stream: greeting, command
 * loop, disconnect.  ip/name describe the client.  Used by smtpd_serve and
 * by the unit tests (with a scripted stream). */
void smtpd_session_run(struct smtpd_stream *st, const char *ip, const char *name);

/* Queue one reply line; the text gets CRLF appended.  Lines are limited to
 * what a reply may be (a few hundred bytes). */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reply 421 with text, flush, and end the session. */
void smtpd_reply_421(struct smtpd_session *s, const char *dsn, const char *text);
/* Forget the current mail transaction (RSET, after DATA, HELO/EHLO). */
void smtpd_txn_reset(struct smtpd_session *s);
/* "ESMTP" or "SMTP" for logs and the Received: header. */
const char *smtpd_proto_name(const struct smtpd_session *s);

/* ---- smtpd_cmd.c ---- */

enum smtpd_cmd_flags {
	CMD_NOARGS = 1,  /* arguments are a syntax error (501) */
	CMD_ARGS = 2,    /* an argument is required (501) */
	CMD_JUNK = 4     /* counts toward smtpd_junk_command_limit */
};

struct smtpd_cmd {
	const char *verb;
	/* State check: NULL when the command may run now, else the complete
	 * reply line refusing it (503). */
	const char *(*check)(const struct smtpd_session *s);
	/* Do it; args is the text after the verb (spaces trimmed, may be "").
	 * Returns 0, or -1 when the reply was an error that counts toward the
	 * session's error limit. */
	int (*proceed)(struct smtpd_session *s, char *args);
	unsigned flags;
};

extern const struct smtpd_cmd smtpd_cmd_table[];
extern const size_t smtpd_cmd_count;

/* The table entry for verb (len bytes, case-insensitive), or NULL. */
const struct smtpd_cmd *smtpd_cmd_find(const char *verb, size_t len);
/* Handle one command line (without its line end; may contain anything).
 * Replies are queued on s->st; s->done set when the session must end. */
void smtpd_cmd_dispatch(struct smtpd_session *s, char *line, size_t len);

/* ---- smtpd_check.c ---- */

/* 1 when the client address is in mynetworks. */
int smtpd_check_client_trusted(const char *ip);
/* Recipient policy for a parsed recipient with a domain.  0: accept;
 * -1: refuse, with the complete reply line in reply. */
int smtpd_check_rcpt(const struct addr *rcpt, int trusted, char *reply, size_t replysize);

/* ---- smtpd_esmtp.c ---- */

/* Next "KEY[=VALUE]" of an ESMTP parameter list at *p (modified in place).
 * 1 with *key and *value (NULL without '='), 0 at the end, -1 on bad syntax. */
int smtpd_next_param(char **p, char **key, char **value);
/* 1 when s is valid xtext (RFC 3461 4) of at most max octets whose decoded
 * form is printable ASCII (no control characters). */
int smtpd_xtext_ok(const char *s, size_t max);
/* NOTIFY value: "NEVER" or a list of SUCCESS, FAILURE, DELAY.  The NOTIFY_ flag
 * bits, or 0 when invalid. */
unsigned smtpd_parse_notify(const char *v);
/* ORCPT value "addr-type;xtext" (RFC 3461 4.2): 1 when valid. */
int smtpd_orcpt_ok(const char *v);
/* BDAT arguments "SIZE [LAST]": 0 with size and last set, -1 on bad syntax. */
int smtpd_parse_bdat(const char *args, unsigned long long *size, int *last);

/* ---- smtpd_content.c ---- */

/* Open the queue file and write tern's Received: header.  0, or -1 after an
 * error reply (452 4.3.1 / 451 4.3.0). */
int smtpd_content_begin(struct smtpd_session *s, struct smtpd_content *c);
/* Append n bytes of the current line; eol: the line ends after them. */
void smtpd_content_put(struct smtpd_content *c, const char *p, size_t n, int eol);
/* The message is complete: check the limits, commit, reply (250 only after
 * the commit).  0 when queued, -1 after an error reply. */
int smtpd_content_finish(struct smtpd_session *s, struct smtpd_content *c);
/* Give up: remove the queue file. */
void smtpd_content_abort(struct smtpd_content *c);

/* ---- smtpd_bdat.c ---- */

/* The BDAT command (args as after the verb).  Returns 0, or -1 for an error reply. */
int smtpd_bdat(struct smtpd_session *s, char *args);

/* ---- smtpd_peer.c ---- */

/* The forward-confirmed reverse name of the peer into name[size], or
 * "unknown".  ip is the address as smtpd shows it (IPv4-mapped unwrapped). */
void smtpd_peername(const struct sockaddr *peer, socklen_t len, const char *ip, char *name, size_t size);
/* The per-process cache of verified names behind smtpd_peername: 1 with
 * name set when ip has an entry younger than a minute at now_ms. */
int smtpd_peer_cache_get(const char *ip, long long now_ms, char *name, size_t size);
void smtpd_peer_cache_put(const char *ip, const char *name, long long now_ms);
/* Once per process (smtpd_init): map the service's scoreboard when the master
 * passed one (proto_master.h); without it no client is counted. */
void smtpd_peer_init(void);
/* Right after accept: show the peer in our scoreboard slot. */
void smtpd_peer_enter(const struct sockaddr *peer, socklen_t len);
/* The service's sessions with this client (ours included) when that is over
 * smtpd_client_connection_count_limit and ip is not exempt; else 0. */
unsigned smtpd_peer_over_limit(const char *ip);
/* The session is over: empty our slot. */
void smtpd_peer_leave(void);

/* ---- smtpd_tls.c ---- */

/* While still root (main.c): find the mode and load the certificate, key
 * and session ticket keys.  Fatal when TLS is required but cannot work. */
void smtpd_tls_init(void);
/* 1 when STARTTLS may be offered now (a certificate, not yet in TLS). */
int smtpd_tls_offer(const struct smtpd_session *s);
/* 1 when the session must be inside TLS before MAIL (encrypt level). */
int smtpd_tls_required(const struct smtpd_session *s);
/* The STARTTLS command's check and proceed functions. */
const char *smtpd_starttls_check(const struct smtpd_session *s);
int smtpd_starttls(struct smtpd_session *s, char *args);
/* Implicit TLS (465): handshake on st's fd before the greeting.  0, or -1
 * (logged; the connection is to be closed). */
int smtpd_tls_wrap(struct smtpd_stream *st, const char *name, const char *ip);
/* Close the TLS session of st, if any. */
void smtpd_tls_end(struct smtpd_stream *st);

/* ---- smtpd_auth.c ---- */

/* Once per process (after the privilege drop): open the password table. */
void smtpd_auth_init(void);
/* 1 when AUTH is offered in EHLO now. */
int smtpd_auth_offer(const struct smtpd_session *s);
/* 1 when this session needs AUTH before MAIL (submission, smtps). */
int smtpd_auth_required(const struct smtpd_session *s);
const char *smtpd_auth_check(const struct smtpd_session *s);
int smtpd_auth(struct smtpd_session *s, char *args);
/* smtpd_sender_login_maps: 0 when the authenticated user may use sender,
 * else -1 with the complete reply line in reply. */
int smtpd_auth_sender_ok(const struct smtpd_session *s, const char *sender, char *reply, size_t replysize);

/* ---- smtpd_data.c ---- */

/* DATA after the state checks: open the queue file, 354, read the content,
 * commit, reply.  Returns 0, or -1 for an error reply. */
int smtpd_data(struct smtpd_session *s);
/* Copy a HELO argument into out[outsize] with everything that could break
 * a header or a log line replaced by '?'. */
void smtpd_sanitise_helo(const char *in, char *out, size_t outsize);

#endif
