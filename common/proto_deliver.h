/*
 * proto_deliver — the queue manager's delivery requests to `local` and
 * `send`, and their per-recipient answers.
 *
 * Transport: the queue manager connects to the agent's Unix stream socket
 * (QUEUE_DIR/private/local or private/send), sends one request whose first
 * byte carries the queue file's descriptor (SCM_RIGHTS, opened read-only)
 * and reads one response.  It may then send further requests on the same
 * connection, each with its own descriptor, for the same next hop (this is
 * what lets `send` reuse its SMTP connection); it closes the connection
 * when it has nothing more for that next hop.  The agent serves requests
 * until EOF or until no request arrives within its idle timeout.  The agent
 * never opens the queue itself.
 *
 * Both messages are text, one attribute per line, "name value\n", in this
 * fixed order; the decoder rejects a missing, extra, repeated, out-of-order
 * or over-long line, and any byte after the final "end" line.
 *
 * Request (version 1):
 *   tern-deliver 1
 *   queue_id QUEUEID
 *   sender ADDRESS           (empty value for the null sender: "sender \n")
 *   nexthop NEXTHOP          (send: "domain", "[host]:port", "host:port"; local: "local")
 *   offset N                 (byte offset of the content in the fd)
 *   length N                 (content length in bytes)
 *   arrival N                (seconds since the epoch)
 *   flags N                  (DELIVER_F_* bits)
 *   envid TEXT               (DSN ENVID, xtext-decoded, printable ASCII; may be empty)
 *   rcpt IDX NOTIFY ORCPT ADDRESS
 *                            (1..DELIVER_MAX_RCPT lines; IDX the recipient's index in
 *                             the queue file, NOTIFY the DSN NOTIFY bits, ORCPT "-" or
 *                             the DSN original recipient as received ("rfc822;xtext"),
 *                             ADDRESS the envelope recipient)
 *   end
 *
 * The content is the message as stored in the queue: LF line ends,
 * dot-unstuffed, starting with tern's Received: header.
 *
 * Response:
 *   tern-result 1
 *   result IDX STATUS DSN MTA TEXT (exactly one per requested rcpt, same order;
 *                                 STATUS ok|temp|perm|relayed (relayed: accepted
 *                                 by a next hop that does not offer DSN, RFC 3461
 *                                 "relayed"); DSN like 2.0.0; MTA the remote
 *                                 host name for the DSN's Remote-MTA, or "-";
 *                                 TEXT one line of printable text, e.g. the remote reply)
 *   end
 *
 * An agent that cannot parse a request closes the connection without an
 * answer; the queue manager then defers every recipient of that request
 * with 4.3.0.
 */
#ifndef TERN_PROTO_DELIVER_H
#define TERN_PROTO_DELIVER_H

#include <stddef.h>
#include <time.h>

#include "addr.h"
#include "buf.h"

#define DELIVER_VERSION 1
#define DELIVER_MAX_RCPT 1000
#define DELIVER_MAX_LINE 2048   /* any one line, including its name */
#define DELIVER_MAX_REQUEST (DELIVER_MAX_RCPT * (ADDR_SIZE + 32) + 8192)
#define DELIVER_MAX_TEXT 1024   /* result text */
#define DELIVER_NEXTHOP_MAX 300
#define DELIVER_ENVID_MAX 100
#define DELIVER_MTA_MAX 256
#define DELIVER_ORCPT_MAX 1024

#define DELIVER_SOCKET_LOCAL "private/local"
#define DELIVER_SOCKET_SEND "private/send"

enum deliver_flags {
	DELIVER_F_8BITMIME = 1,  /* BODY=8BITMIME */
	DELIVER_F_SMTPUTF8 = 2,  /* SMTPUTF8 was given */
	DELIVER_F_RET_HDRS = 4   /* DSN RET=HDRS (default FULL) */
};

enum deliver_notify {
	NOTIFY_SUCCESS = 1,
	NOTIFY_FAILURE = 2,
	NOTIFY_DELAY = 4,
	NOTIFY_NEVER = 8   /* 0 means "not given": the default FAILURE,DELAY */
};

enum deliver_status { DELIVER_OK = 0, DELIVER_TEMP = 1, DELIVER_PERM = 2, DELIVER_RELAYED = 3 };

struct deliver_rcpt {
	unsigned idx;
	unsigned notify;
	char address[ADDR_SIZE];
	char orcpt[DELIVER_ORCPT_MAX]; /* "" when absent; set after deliver_request_add */
	/* filled by the agent: */
	enum deliver_status status;
	char dsn[16];
	char mta[DELIVER_MTA_MAX]; /* remote MTA host, "" when none */
	char text[DELIVER_MAX_TEXT];
};

struct deliver_request {
	char queue_id[32];
	char sender[ADDR_SIZE];
	char nexthop[DELIVER_NEXTHOP_MAX];
	unsigned long long offset;
	unsigned long long length;
	long long arrival;
	unsigned flags;
	char envid[DELIVER_ENVID_MAX + 1];
	struct deliver_rcpt *rcpt; /* owned, nrcpt entries */
	size_t nrcpt;
};

void deliver_request_init(struct deliver_request *r);
void deliver_request_free(struct deliver_request *r);
/* Append a recipient (fatal past DELIVER_MAX_RCPT: the caller must check). */
struct deliver_rcpt *deliver_request_add(struct deliver_request *r, unsigned idx, unsigned notify,
					 const char *address);

/* Encode a request / response into out (replaced).  -1 when a field is
 * invalid (contains a control character, too long) or out's max is too small. */
int deliver_encode_request(const struct deliver_request *r, struct buf *out);
int deliver_encode_response(const struct deliver_request *r, struct buf *out);

/* Decode; on error -1 with a short reason in err.  decode_response fills the
 * status/dsn/text of r's recipients, which must be those of the request. */
int deliver_decode_request(const char *p, size_t n, struct deliver_request *r, char *err, size_t errsize);
int deliver_decode_response(const char *p, size_t n, struct deliver_request *r, char *err, size_t errsize);

/* Set one recipient's result (text is sanitised: control chars → '?', cut at
 * DELIVER_MAX_TEXT-1 bytes). */
void deliver_set_result(struct deliver_rcpt *rc, enum deliver_status st, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Agent side: read a complete request from sock (the first recvmsg carries
 * the fd); 0 and *fd on success, -1 on error/timeout (reason logged). */
int deliver_read_request(int sock, int timeout_ms, struct deliver_request *r, int *fd);
/* Agent side: does msgfd hold all of [offset, offset+length)?  A queue
 * file shorter than its request must never be delivered in part. */
int deliver_content_present(int msgfd, const struct deliver_request *r);
/* Agent side: send the response. 0 or -1. */
int deliver_write_response(int sock, const struct deliver_request *r);

/* Agent side, the whole exchange: read a request (waiting at most
 * timeout_ms), call deliver(request, message fd) which sets every
 * recipient's result, close the fd, send the response; repeat until the
 * queue manager closes the connection or goes quiet.  A bad request is
 * logged and ends the connection without an answer (the queue manager then
 * defers its recipients). */
typedef void (*deliver_fn)(struct deliver_request *r, int msgfd);
void deliver_serve(int sock, int timeout_ms, deliver_fn deliver);

#endif
