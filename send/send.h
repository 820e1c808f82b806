/*
 * send.h — internal interfaces of the remote (SMTP) delivery agent.
 *
 * The queue manager sends proto_deliver requests over one connection, each
 * one message, up to DELIVER_MAX_RCPT recipients, one nexthop.  Per request
 * the agent
 *
 *   1. parses the nexthop (send_nexthop.c): "[host]:port", "[host]",
 *      "host:port", "host";
 *   2. bounces a message with too many Received: headers (send_mime.c);
 *   3. reuses the SMTP connection kept from the previous request when it
 *      went to the same nexthop (send_deliver.c);
 *   4. otherwise resolves the nexthop into an ordered list of addresses
 *      (send_dns.c: MX records by preference, equal ones shuffled, CNAMEs
 *      followed, the `resolver` setting), drops the MX hosts that are this
 *      host itself (send_self.c), and tries the addresses in order until
 *      every recipient has an answer from a server or the list is exhausted;
 *   5. speaks SMTP on each connection (send_smtp.c: per-command timeouts,
 *      PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN; replies read by the strict
 *      bounded reader in send_reply.c, content written by the dot-stuffing
 *      CRLF writer in send_data.c, 8-bit MIME converted to quoted-printable
 *      for 7-bit peers by send_mime.c);
 *   6. logs one Postfix-shaped line per recipient and answers; the SMTP
 *      connection stays open (after RSET) for the next request to the same
 *      nexthop, bounded in count and time, and gets QUIT when the queue
 *      manager closes its connection.
 *
 * TLS and AUTH (a later issue) slot in as the io callbacks of smtp_conn and
 * a step after EHLO in send_smtp.c.
 */
#ifndef TERN_SEND_H
#define TERN_SEND_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buf.h"
#include "lineread.h"
#include "proto_deliver.h"

#define SEND_HOST_MAX 256          /* a host name or address literal, with NUL */
#define SEND_MAX_MX 100            /* MX records considered per domain */
#define SEND_MAX_ADDRS 20          /* addresses tried per delivery */
#define SMTP_LINE_MAX 4096         /* longest reply line */
#define SMTP_REPLY_LINES 100       /* most lines in one reply */
#define SEND_CHUNK 65536           /* content read chunk */
#define SEND_REQUEST_TIMEOUT_MS 60000
#define SEND_CNAME_MAX 5           /* CNAME links followed per lookup */
#define SEND_MX_LOOKUP_MS 20000    /* no further MX host looked up after this */

/* ---- nexthop (send_nexthop.c) ---- */

struct send_nexthop {
	char host[SEND_HOST_MAX]; /* without brackets or "ipv6:" */
	char port[8];             /* decimal, "25" by default */
	int literal;              /* [host]: no MX lookup */
};

/* Parse a nexthop.  0, or -1 when malformed (empty host, bad port...). */
int send_nexthop_parse(const char *s, struct send_nexthop *nh);

/* ---- DNS (send_dns.c) ---- */

struct send_mx {
	unsigned pref;
	char name[SEND_HOST_MAX];
};

struct send_target {
	char name[SEND_HOST_MAX]; /* host name as looked up (for logs) */
	unsigned pref;            /* MX preference (0 for a host nexthop) */
	struct sockaddr_storage sa;
	socklen_t salen;
};

struct send_targets {
	struct send_target t[SEND_MAX_ADDRS];
	size_t n;
};

/* Why a resolution failed: temp or perm, a DSN code and a text. */
struct send_error {
	enum deliver_status status;
	char dsn[16];
	char text[512];
};

/*
 * Parse a DNS reply to an MX query (the wire format, len bytes) into mx[],
 * keeping the max lowest preferences, sorted by preference.  Returns the
 * number of MX records (0 when the answer holds none), or -1 when the reply
 * is malformed.  *null_mx is set when a null MX (RFC 7505, ".") was seen.
 */
int send_dns_parse_mx(const unsigned char *ans, size_t len, struct send_mx *mx, size_t max, int *null_mx);

/*
 * Parse a DNS reply to an A (qtype ns_t_a) or AAAA query: the addresses go
 * to sa[] (at most max, port set to port), the target of a CNAME in the
 * answer to cname (cnamesize bytes, "" when none).  Returns the number of
 * addresses or -1 when the reply is malformed.  send_dns_parse_mx also
 * reports a CNAME through send_dns_parse_cname.
 */
int send_dns_parse_addrs(const unsigned char *ans, size_t len, int qtype, unsigned port, struct sockaddr_storage *sa,
			 size_t max, char *cname, size_t cnamesize);
/* The target of the first CNAME in the answer ("" when none); -1 when malformed. */
int send_dns_parse_cname(const unsigned char *ans, size_t len, char *cname, size_t cnamesize);
/* Shuffle each run of equal preferences of a sorted MX list. */
void send_dns_shuffle(struct send_mx *mx, size_t n);
/* Parse the `resolver` setting ("ip", "ip:port", "[ip]:port"; IPv4) into
 * sin.  0, or -1 when malformed. */
int send_resolver_parse(const char *s, struct sockaddr_in *sin);
/* Order targets by smtp_address_preference (stable: ipv4 / ipv6 first;
 * "any" keeps the resolver's order). */
void send_order_family(struct send_target *t, size_t n);

/* Resolve nh into addresses in the order they must be tried, without the
 * MX hosts that are this host (see send_self.c).  0 with out filled
 * (out->n >= 1), or -1 with err set. */
int send_resolve(const struct send_nexthop *nh, struct send_targets *out, struct send_error *err);

/* ---- loops back to myself (send_self.c) ---- */

/* 1 when sa (address and port) is one smtpd listens on: an entry of
 * smtpd_listen, or for a wildcard entry any address of this host (the
 * interfaces' addresses and all of 127.0.0.0/8 and ::1) with that port. */
int send_is_self(const struct sockaddr *sa, socklen_t salen);
/* Drop the MX targets at or above the best preference that is myself.  0
 * (targets left), or -1 with err: perm 5.4.6 "mail for DOMAIN loops back
 * to myself", temp 4.4.6 when domain is in relay_domains (a backup MX whose
 * better MX hosts are all gone: wait rather than bounce). */
int send_drop_self(const char *domain, struct send_targets *t, struct send_error *err);

/* ---- the connection and replies (send_reply.c) ---- */

struct smtp_conn;
/* The transport under the SMTP conversation: plain socket I/O by default;
 * TLS replaces these (same contract as read(2)/send(2) on a non-blocking
 * socket: -1 with EAGAIN when it would block). */
typedef ssize_t (*smtp_io_fn)(struct smtp_conn *c, void *p, size_t n);

struct smtp_conn {
	int fd;            /* non-blocking connected socket */
	int timeout_ms;    /* for each reply, and for each write */
	long long deadline_ms; /* current read deadline (monotonic ms) */
	struct linereader lr;
	struct buf out;    /* pending output */
	smtp_io_fn io_read, io_write;
	void *io_ctx;      /* for a TLS layer */
	short io_events;   /* set by a TLS io function that returned EAGAIN: the poll events it waits for */
	const char *trace; /* "host[ip]": log each command and reply line (debug_peer_list) */
};

struct smtp_reply {
	int code;          /* 200..599 */
	char dsn[16];      /* enhanced status from the text, or "" */
	struct buf lines;  /* text of each line (after "NNN-"), '\n'-separated */
	size_t nlines;
};

enum smtp_read_result {
	SMTP_REPLY_OK = 0,
	SMTP_REPLY_LOST = -1,      /* end of input before a complete reply */
	SMTP_REPLY_TIMEOUT = -2,
	SMTP_REPLY_ERROR = -3,     /* read error (errno) */
	SMTP_REPLY_MALFORMED = -4  /* bad code, mixed codes, overlong line, NUL, too many lines */
};

void smtp_conn_init(struct smtp_conn *c, int fd, int timeout_ms);
void smtp_conn_free(struct smtp_conn *c);
/* Queue output (flushed when the buffer fills). 0 or -1 (errno). */
int smtp_conn_put(struct smtp_conn *c, const void *p, size_t n);
int smtp_conn_printf(struct smtp_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write everything queued, each write within timeout_ms.  0 or -1 (errno;
 * ETIMEDOUT on a timeout). */
int smtp_conn_flush(struct smtp_conn *c);

void smtp_reply_init(struct smtp_reply *rep);
void smtp_reply_free(struct smtp_reply *rep);
/* Flush pending output, then read one complete reply within timeout_ms. */
enum smtp_read_result smtp_read_reply(struct smtp_conn *c, struct smtp_reply *rep);
/* "550 5.1.1 text text" (lines joined by spaces, cut to fit) into out. */
void smtp_reply_text(const struct smtp_reply *rep, char *out, size_t outsize);
/* Does a 250 EHLO reply offer the extension keyword (case-insensitive)? */
int smtp_reply_has_ext(const struct smtp_reply *rep, const char *keyword);
/* The parameter of an EHLO keyword ("SIZE 1000" → "1000") into out; 1 when
 * the keyword is offered, 0 when not. */
int smtp_reply_ext_param(const struct smtp_reply *rep, const char *keyword, char *out, size_t outsize);

/* ---- content (send_data.c) ---- */

/*
 * Send [offset, offset+length) of msgfd as DATA content: LF (and a CR that
 * stands alone) become CRLF, a line starting with '.' gets another '.', and
 * the terminating ".\r\n" is appended (after a CRLF when the content does
 * not end with a line end).  0, or -1 with errno (EIO for a short file).
 */
int smtp_send_content(struct smtp_conn *c, int msgfd, unsigned long long offset, unsigned long long length);

/* The conversion itself on one piece: in[n] to out (which needs 2n + 2
 * bytes), *state carried between pieces (start with 0).  Returns the bytes
 * written.  smtp_data_finish writes the end of the content (at most 5 bytes). */
size_t smtp_data_convert(const char *in, size_t n, char *out, int *state);
size_t smtp_data_finish(char *out, int state);
/* Streaming form: convert and queue n bytes on c; smtp_data_end queues the
 * end (".") and flushes.  0 or -1 (errno). */
int smtp_data_put(struct smtp_conn *c, const char *p, size_t n, int *state);
int smtp_data_end(struct smtp_conn *c, int state);

/* ---- MIME and headers (send_mime.c) ---- */

/* Received: headers in the header section of the content.  -1 on a read
 * error. */
long send_count_received(int msgfd, unsigned long long offset, unsigned long long length);
/* Does the content hold an 8-bit byte in a body that can be converted? 1,
 * 0, or -1 (read error). */
int send_mime_needs_qp(int msgfd, unsigned long long offset, unsigned long long length);
/*
 * Send the content with every convertible 8-bit body part (the message
 * itself, or the parts of a top-level multipart) as quoted-printable, its
 * Content-Transfer-Encoding set accordingly; the rest unchanged.  The
 * output goes through the dot-stuffing CRLF writer and ends with ".".
 * 0, or -1 (errno; EIO for a short file).
 */
int smtp_send_content_qp(struct smtp_conn *c, int msgfd, unsigned long long offset, unsigned long long length);

/* ---- the session (send_smtp.c) ---- */

enum send_rcpt_state {
	RCPT_PENDING = 0, /* no answer yet: may be tried at the next address */
	RCPT_ACCEPTED,    /* RCPT accepted in the current transaction */
	RCPT_DONE         /* final result for this request */
};

/* One SMTP connection; it may outlive a request (connection reuse). */
struct smtp_session {
	int fd;
	struct smtp_conn c;
	struct smtp_reply rep;
	int greeted;                  /* greeting and EHLO/HELO done */
	int idle;                     /* no transaction open: a kept connection needs no RSET */
	int pipelining, eightbit, smtputf8, dsn, size_offered;
	unsigned long long size_limit; /* SIZE n from EHLO; 0: none */
	char name[SEND_HOST_MAX];      /* host name (the DSN's Remote-MTA) */
	char relay[SEND_HOST_MAX + 80]; /* "host[ip]:port" for log lines */
	char peer[SEND_HOST_MAX + 64];  /* "host[ip]" for result texts */
	char nexthop[DELIVER_NEXTHOP_MAX]; /* what it was opened for */
	void *tls;                     /* SSL session after STARTTLS (send_tls.c), else NULL */
	int no_tls;                    /* do not try STARTTLS (the plaintext retry of level may) */
	int tls_failed_may;            /* the handshake failed at level may: retry in plaintext */
	int authenticated;             /* AUTH done (send_auth.c) */
	long long opened_ms;           /* monotonic */
	unsigned long uses;            /* transactions done */
};

struct send_attempt {
	struct deliver_request *r;
	int msgfd;
	enum send_rcpt_state *state; /* r->nrcpt entries */
	struct smtp_session *s;      /* the current connection */
	double t_req, t_ready;       /* wall clock: request start, session ready for MAIL */
};

/* Start a session on a connected fd (nothing is read or written yet). */
void send_session_init(struct smtp_session *s, int fd, const struct send_target *t, const char *nexthop);
/* Close without a word (the fd too). */
void send_session_free(struct smtp_session *s);
/* QUIT (waiting smtp_quit_timeout at most for the reply), then free. */
void send_session_quit(struct smtp_session *s);
/* RSET for the next transaction.  0 when the peer answered 2xx. */
int send_session_rset(struct smtp_session *s);

/* Run one transaction on the session (greeting and EHLO first when not yet
 * done).  Every recipient ends either DONE (and logged) or PENDING with a
 * tentative temporary result.  Returns 0 when the connection is idle and
 * usable (for RSET and reuse, or QUIT), -1 when it must just be closed. */
int send_smtp_session(struct send_attempt *a, struct smtp_session *s);

/* ---- TLS and AUTH after EHLO (send_tls.c, send_auth.c) ---- */

/* The TLS security level for a nexthop: smtp_tls_policy_maps, else
 * smtp_tls_security_level.  "none", "may", "encrypt" or "verify". */
const char *send_tls_level(const char *nexthop);
/*
 * STARTTLS has been answered 220 on s: handshake, verify per level (the
 * peer name is peername: the MX host or the nexthop host), switch s->c to
 * TLS and log "Trusted|Untrusted|Verified TLS connection established to
 * host[ip]:port: ...".  0, or -1 with the deferral text in why.
 */
int send_tls_handshake(struct smtp_session *s, const char *level, const char *peername, char *why, size_t whysize);
/* Close the TLS session (before the socket). */
void send_tls_end(struct smtp_session *s);
/* 1 when the TLS layer holds decrypted input not yet read (connection reuse). */
int send_tls_pending(const struct smtp_session *s);
/* Credentials for nexthop from smtp_sasl_password_maps: 1 with user and
 * pass (each SASL_FIELD_MAX + 1 bytes), 0 none, -1 table error. */
int send_auth_lookup(const char *nexthop, char *user, char *pass);
/* AUTH PLAIN (or LOGIN when the peer offers only that) on s.  0 on 235;
 * -1 with the deferral text in why (the reply, or the connection). */
int send_auth(struct smtp_session *s, const char *user, const char *pass, char *why, size_t whysize);

/* ---- delivery (send_deliver.c) ---- */

/* One Postfix-shaped log line for a recipient (relay "none" when a is NULL
 * or had no connection). */
void send_log_rcpt(const struct send_attempt *a, const struct deliver_rcpt *rc);
/* Deliver every recipient of r (message on msgfd) and log the results. */
void send_deliver_request(struct deliver_request *r, int msgfd);
/* The same after resolution: try targets in order (the content was checked). */
void send_deliver_to(struct deliver_request *r, int msgfd, const struct send_targets *targets);
/* Connection reuse: off until send_reuse_begin (the queue manager's
 * connection starts); send_reuse_end QUITs a kept connection and turns
 * reuse off again.  send_reuse_cached tells whether one is kept (tests). */
void send_reuse_begin(void);
void send_reuse_end(void);
int send_reuse_cached(void);
/* Should the conversation with this destination be traced (debug_peer_list)? */
int send_debug_peer(const char *domain, const char *host, const char *ip);
/* server_prefork callback: serve requests, deliver, answer. */
void send_serve(int fd, const struct sockaddr *peer, socklen_t peerlen);

#endif
