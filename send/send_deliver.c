/*
 * send_deliver — one delivery request: loops, reuse, resolve, connect.
 *
 * A request first passes the hop limit: more Received: headers than
 * hopcount_limit bounce every recipient (5.4.6, a forwarding loop).  Then,
 * when the previous request of this queue-manager connection left an SMTP
 * connection open for the same nexthop (younger than
 * smtp_connection_reuse_time_limit, fewer than
 * smtp_connection_reuse_count_limit messages), the message goes over it
 * without a DNS lookup; if that connection turns out dead the recipients
 * are still open and the normal path follows.  The normal path: the
 * addresses from send_resolve are tried in order, each with
 * smtp_connect_timeout, until every recipient has a final answer from some
 * server (send_smtp.c decides what is final) or the list is exhausted;
 * recipients still open then keep the last temporary error (connection
 * refused or timed out: 4.4.1; lost: 4.4.2; malformed reply: 4.5.0).
 *
 * After a transaction the connection (RSET first if the transaction was
 * left open) is kept for the next
 * request (only between send_reuse_begin and send_reuse_end: send_serve
 * brackets the queue manager's connection with them, so the kept
 * connection gets QUIT when the queue manager is done); otherwise QUIT.
 * A connection with input that answers no command (a line after the reply
 * to ".") is closed instead: at once when it came with the reply (read
 * ahead), else when the connection is taken for the next request (the
 * socket is polled then, once per reuse): the next MAIL would read that
 * line as its reply and shift every result.
 *
 * Each recipient is logged once, Postfix-shaped:
 *   QUEUEID: to=<r>, relay=host[ip]:port, delay=D, delays=a/b/c/d,
 *   dsn=X.Y.Z, status=sent (250 ...)
 * with relay=none when no server was reached.  delays: a = arrival until
 * send got the request (queue manager time is included: the request does
 * not carry it), b = 0, c = DNS, connect, greeting and EHLO (0 on a reused
 * connection), d = the transaction.  status=sent for a "relayed" result.
 *
 * Public: send_deliver_request and send_deliver_to (the unit tests' entry
 * points), send_reuse_begin/end/cached, send_debug_peer, send_serve
 * (server_prefork callback), send_log_rcpt.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "send.h"
#include "sock.h"
#include "strutil.h"
#include "xalloc.h"

static int reuse_on;
static struct smtp_session *cached;

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Postfix's style: "0" below 10 ms, two decimals below 10 s, whole seconds above. */
static void fmt_secs(double d, char *out, size_t outsize)
{
	if (d < 0.005)
		snprintf(out, outsize, "0");
	else if (d < 10)
		snprintf(out, outsize, "%.2f", d);
	else
		snprintf(out, outsize, "%.0f", d);
}

static void log_rcpt_relay(const struct send_attempt *a, const struct deliver_rcpt *rc, const char *relay)
{
	char delay[32], da[32], dc[32], dd[32];
	const struct deliver_request *r = a->r;
	const char *word = rc->status == DELIVER_OK || rc->status == DELIVER_RELAYED ? "sent"
			   : rc->status == DELIVER_TEMP				 ? "deferred"
										 : "bounced";
	double now = wall_now(), req = a->t_req > 0 ? a->t_req : now;
	double ready = a->t_ready > 0 ? a->t_ready : now;
	fmt_secs(now - (double)r->arrival, delay, sizeof(delay));
	fmt_secs(req - (double)r->arrival, da, sizeof(da));
	fmt_secs(ready - req, dc, sizeof(dc));
	fmt_secs(now - ready, dd, sizeof(dd));
	log_info("%s: to=<%s>, relay=%s, delay=%s, delays=%s/0/%s/%s, dsn=%s, status=%s (%s)", r->queue_id, rc->address,
		 relay, delay, da, dc, dd, rc->dsn, word, rc->text);
}

void send_log_rcpt(const struct send_attempt *a, const struct deliver_rcpt *rc)
{
	log_rcpt_relay(a, rc, a->s ? a->s->relay : "none");
}

int send_debug_peer(const char *domain, const char *host, const char *ip)
{
	const char *l = cf.debug_peer_list;
	if (l == NULL || l[0] == '\0')
		return 0;
	return (domain && list_has_domain(l, domain)) || (host && list_has_domain(l, host)) ||
	       (ip && list_has_domain(l, ip));
}

/* Non-blocking connect within timeout_ms.  The socket, or -1 with errno. */
static int connect_timeout(const struct send_target *t, int timeout_ms)
{
	int fd = socket(t->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&t->sa, t->salen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EINTR) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	int err = 0;
	socklen_t len = sizeof(err);
	if (r == 0)
		err = ETIMEDOUT;
	else if (r < 0)
		err = errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static int connect_timeout_ms(void)
{
	long long s = cf.smtp_connect_timeout;
	if (s <= 0)
		s = 30;
	return s > INT_MAX / 1000 ? INT_MAX : (int)(s * 1000);
}

/* May this session carry another message? */
static int reusable(const struct smtp_session *s)
{
	long long limit = cf.smtp_connection_reuse_time_limit;
	return reuse_on && s->fd >= 0 && (long long)s->uses < cf.smtp_connection_reuse_count_limit &&
	       clock_ms() - s->opened_ms < limit * 1000;
}

/*
 * Bytes from the peer that answer no command: read ahead with a reply, or
 * arrived on the idle socket since.  The next transaction would take them
 * for its replies and every result would shift by one, so such a
 * connection is never reused, and gets no QUIT either: a peer out of step
 * cannot be trusted to answer it.  1 for such input, 2 when the peer has
 * closed (or the socket failed), 0 when the connection is quiet.
 */
static int read_ahead(const struct smtp_session *s)
{
	return lr_pending(&s->c.lr) > 0 || send_tls_pending(s);
}

static int unread_input(const struct smtp_session *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	char c;
	int r;
	if (read_ahead(s))
		return 1;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	return r > 0 && recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0 ? 1 : 2;
}

/* Close a connection unread_input objected to (u: its answer). */
static void drop_unread(struct smtp_session *s, int u)
{
	if (u == 1)
		log_warning("%s: unexpected input after the last reply; connection closed, not reused", s->relay);
	send_session_free(s);
	free(s);
}

/* After a transaction (rc from send_smtp_session): keep or close. */
static void finish_session(struct smtp_session *s, int rc)
{
	/* Only what was read ahead with the reply: the socket itself is
	 * looked at once, when the connection is taken again (take_cached),
	 * not also here for every message. */
	if (rc == 0 && reuse_on && read_ahead(s)) {
		drop_unread(s, 1);
		return;
	}
	if (rc == 0 && reusable(s) && (s->idle || send_session_rset(s) == 0)) {
		cached = s;
		return;
	}
	if (rc == 0)
		send_session_quit(s);
	else
		send_session_free(s);
	free(s);
}

void send_reuse_begin(void)
{
	reuse_on = 1;
}

void send_reuse_end(void)
{
	if (cached) {
		send_session_quit(cached);
		free(cached);
		cached = NULL;
	}
	reuse_on = 0;
}

int send_reuse_cached(void)
{
	return cached != NULL;
}

static size_t open_count(const struct send_attempt *a)
{
	size_t open = 0;
	for (size_t i = 0; i < a->r->nrcpt; i++)
		if (a->state[i] != RCPT_DONE)
			open++;
	return open;
}

static void attempt_init(struct send_attempt *a, struct deliver_request *r, int msgfd)
{
	memset(a, 0, sizeof(*a));
	a->r = r;
	a->msgfd = msgfd;
	a->t_req = wall_now();
	a->state = xcalloc(r->nrcpt ? r->nrcpt : 1, sizeof(*a->state));
	for (size_t i = 0; i < r->nrcpt; i++)
		deliver_set_result(&r->rcpt[i], DELIVER_TEMP, "4.4.1", "delivery not attempted");
}

/* Log the recipients left open, with the last relay tried. */
static void attempt_finish(struct send_attempt *a, const char *relay)
{
	for (size_t i = 0; i < a->r->nrcpt; i++)
		if (a->state[i] != RCPT_DONE)
			log_rcpt_relay(a, &a->r->rcpt[i], relay);
	free(a->state);
	a->state = NULL;
}

/* Try the targets in order; relay gets the last one reached ("none"). */
static void deliver_targets(struct send_attempt *a, const struct send_targets *targets, char *relay, size_t relaysize)
{
	struct deliver_request *r = a->r;
	struct send_nexthop nh;
	char text[DELIVER_MAX_TEXT];
	const char *domain = send_nexthop_parse(r->nexthop, &nh) == 0 ? nh.host : NULL;

	for (size_t k = 0; k < targets->n && open_count(a) > 0; k++) {
		const struct send_target *t = &targets->t[k];
		char ip[INET6_ADDRSTRLEN + 8];
		int port = 0;
		sock_addr_text((const struct sockaddr *)&t->sa, t->salen, ip, sizeof(ip), &port);
		int plain_retry = 0;
	retry:
		a->s = NULL;
		a->t_ready = 0;

		int fd = connect_timeout(t, connect_timeout_ms());
		if (fd < 0) {
			int e = errno;
			snprintf(text, sizeof(text), "connect to %s[%s]:%d: %s", t->name, ip, port,
				 e == ETIMEDOUT ? "Connection timed out" : strerror(e));
			log_info("%s: %s", r->queue_id, text);
			for (size_t i = 0; i < r->nrcpt; i++)
				if (a->state[i] != RCPT_DONE)
					deliver_set_result(&r->rcpt[i], DELIVER_TEMP, "4.4.1", "%s", text);
			snprintf(relay, relaysize, "none");
			continue;
		}
		struct smtp_session *s = xmalloc(sizeof(*s));
		send_session_init(s, fd, t, r->nexthop);
		s->no_tls = plain_retry;
		if (send_debug_peer(domain, t->name, ip))
			s->c.trace = s->peer;
		int rc = send_smtp_session(a, s);
		snprintf(relay, relaysize, "%s", s->relay);
		a->s = NULL;
		/* TLS level may: a failed handshake is retried once without TLS. */
		int again = s->tls_failed_may && !plain_retry;
		finish_session(s, rc);
		if (again && open_count(a) > 0) {
			log_info("%s: retrying %s[%s]:%d without TLS", r->queue_id, t->name, ip, port);
			plain_retry = 1;
			goto retry;
		}
		for (size_t i = 0; i < r->nrcpt; i++)
			if (a->state[i] == RCPT_ACCEPTED) /* cannot happen: the session settles these */
				a->state[i] = RCPT_PENDING;
	}
}

void send_deliver_to(struct deliver_request *r, int msgfd, const struct send_targets *targets)
{
	struct send_attempt a;
	char relay[SEND_HOST_MAX + 80] = "none";
	attempt_init(&a, r, msgfd);
	deliver_targets(&a, targets, relay, sizeof(relay));
	attempt_finish(&a, relay);
}

static void all_fail(struct send_attempt *a, enum deliver_status st, const char *dsn, const char *text)
{
	for (size_t i = 0; i < a->r->nrcpt; i++) {
		if (a->state[i] == RCPT_DONE)
			continue;
		deliver_set_result(&a->r->rcpt[i], st, dsn, "%s", text);
		a->state[i] = RCPT_DONE;
		log_rcpt_relay(a, &a->r->rcpt[i], "none");
	}
}


/* The kept connection, when it may carry this request; NULL otherwise (a
 * kept connection for another nexthop or too old gets QUIT). */
static struct smtp_session *take_cached(const struct deliver_request *r)
{
	struct smtp_session *s = cached;
	if (s == NULL)
		return NULL;
	cached = NULL;
	int u = unread_input(s);
	if (u != 0) {
		drop_unread(s, u);
		return NULL;
	}
	if (strcmp(s->nexthop, r->nexthop) == 0 && reusable(s))
		return s;
	send_session_quit(s);
	free(s);
	return NULL;
}

void send_deliver_request(struct deliver_request *r, int msgfd)
{
	struct send_nexthop nh;
	struct send_targets *targets;
	struct send_error err;
	struct send_attempt a;
	char relay[SEND_HOST_MAX + 80] = "none", text[300];

	if (r->nrcpt == 0)
		return;
	attempt_init(&a, r, msgfd);
	if (send_nexthop_parse(r->nexthop, &nh) < 0) {
		log_warning("%s: malformed nexthop \"%s\"", r->queue_id, r->nexthop);
		all_fail(&a, DELIVER_TEMP, "4.3.5", "malformed nexthop in the transport configuration");
		goto out;
	}
	if (!deliver_content_present(msgfd, r)) {
		log_warning("%s: queue file is shorter than the delivery request", r->queue_id);
		all_fail(&a, DELIVER_TEMP, "4.3.0", "error reading the queue file");
		goto out;
	}
	long hops = send_count_received(msgfd, r->offset, r->length);
	if (hops < 0) {
		all_fail(&a, DELIVER_TEMP, "4.3.0", "error reading the queue file");
		goto out;
	}
	if (hops > cf.hopcount_limit) {
		snprintf(text, sizeof(text), "mail forwarding loop: too many hops (%ld Received: headers, limit %lld)",
			 hops, cf.hopcount_limit);
		all_fail(&a, DELIVER_PERM, "5.4.6", text);
		goto out;
	}
	struct smtp_session *s = take_cached(r);
	if (s) {
		int rc = send_smtp_session(&a, s);
		snprintf(relay, sizeof(relay), "%s", s->relay);
		a.s = NULL;
		finish_session(s, rc);
		if (open_count(&a) == 0)
			goto out;
		a.t_ready = 0; /* a dead kept connection: the normal path follows */
	}
	targets = xmalloc(sizeof(*targets));
	if (send_resolve(&nh, targets, &err) < 0)
		all_fail(&a, err.status, err.dsn, err.text);
	else
		deliver_targets(&a, targets, relay, sizeof(relay));
	free(targets);
out:
	attempt_finish(&a, relay);
}

void send_serve(int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	(void)peer;
	(void)peerlen;
	send_reuse_begin();
	deliver_serve(fd, SEND_REQUEST_TIMEOUT_MS, send_deliver_request);
	send_reuse_end();
}
