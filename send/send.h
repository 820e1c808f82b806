/*
 * send.h — internal interfaces of the remote (SMTP) delivery agent.
 *
 * One proto_deliver request per connection from the queue manager: one
 * message, up to DELIVER_MAX_RCPT recipients, one nexthop.  The agent
 *
 *   1. parses the nexthop (send_nexthop.c): "[host]:port", "[host]",
 *      "host:port", "host";
 *   2. resolves it into an ordered list of addresses (send_dns.c): MX
 *      records sorted by preference, or the host's own addresses;
 *   3. tries the addresses in order (send_deliver.c) until every recipient
 *      has an answer from a server or the list is exhausted;
 *   4. speaks SMTP on each connection (send_smtp.c, replies read by the
 *      strict bounded reader in send_reply.c, content written by the
 *      dot-stuffing CRLF writer in send_data.c);
 *   5. logs one Postfix-shaped line per recipient and answers.
 *
 * Issue 6 deepens this: connection reuse, SIZE, DSN, QP conversion,
 * loop detection against our own addresses, TLS later.
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
#define SEND_QUIT_TIMEOUT_MS 10000 /* wait this long for the reply to QUIT */
#define SEND_REQUEST_TIMEOUT_MS 60000

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

/* Resolve nh into addresses in the order they must be tried.  0 with out
 * filled (out->n >= 1), or -1 with err set. */
int send_resolve(const struct send_nexthop *nh, struct send_targets *out, struct send_error *err);

/* ---- the connection and replies (send_reply.c) ---- */

struct smtp_conn {
	int fd;            /* non-blocking connected socket */
	int timeout_ms;    /* for each reply, and for each write */
	long long deadline_ms; /* current read deadline (monotonic ms) */
	struct linereader lr;
	struct buf out;    /* pending output */
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

/* ---- the session (send_smtp.c) ---- */

enum send_rcpt_state {
	RCPT_PENDING = 0, /* no answer yet: may be tried at the next address */
	RCPT_ACCEPTED,    /* RCPT accepted in the current transaction */
	RCPT_DONE         /* final result for this request */
};

struct send_attempt {
	struct deliver_request *r;
	int msgfd;
	enum send_rcpt_state *state; /* r->nrcpt entries */
	char relay[SEND_HOST_MAX + 80];  /* "host[ip]:port" for log lines */
	char peer[SEND_HOST_MAX + 64];   /* "host[ip]" for result texts */
};

/* Run one SMTP session over the connected fd.  Every recipient ends either
 * DONE (and logged) or PENDING with a tentative temporary result. */
void send_smtp_session(struct send_attempt *a, int fd);

/* ---- delivery (send_deliver.c) ---- */

/* One Postfix-shaped log line for a recipient. */
void send_log_rcpt(const struct deliver_request *r, const struct deliver_rcpt *rc, const char *relay);
/* Deliver every recipient of r (message on msgfd) and log the results. */
void send_deliver_request(struct deliver_request *r, int msgfd);
/* The same after resolution: try targets in order (the content was checked). */
void send_deliver_to(struct deliver_request *r, int msgfd, const struct send_targets *targets);
/* server_prefork callback: read a request, deliver, answer. */
void send_serve(int fd, const struct sockaddr *peer, socklen_t peerlen);

#endif
