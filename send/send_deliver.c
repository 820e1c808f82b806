/*
 * send_deliver — one delivery request: resolve, connect, run sessions.
 *
 * The addresses from send_resolve are tried in order, each with
 * smtp_connect_timeout, until every recipient has a final answer from some
 * server (send_smtp.c decides what is final) or the list is exhausted;
 * recipients still open then keep the last temporary error (connection
 * refused or timed out: 4.4.1; lost: 4.4.2; malformed reply: 4.5.0).
 *
 * Each recipient is logged once, Postfix-shaped:
 *   QUEUEID: to=<r>, relay=host[ip]:port, delay=D, dsn=X.Y.Z, status=sent (250 ...)
 * with relay=none when no server was reached.
 *
 * Public: send_deliver_request and send_deliver_to (the unit tests' entry
 * points), send_serve (server_prefork callback), send_log_rcpt.
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
#include <sys/time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "send.h"
#include "sock.h"
#include "xalloc.h"

static void format_delay(long long arrival, char *out, size_t outsize)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	double d = (double)tv.tv_sec - (double)arrival + (double)tv.tv_usec / 1e6;
	if (d < 0)
		d = 0;
	if (d < 0.1)
		snprintf(out, outsize, "%.2f", d);
	else if (d < 10)
		snprintf(out, outsize, "%.1f", d);
	else
		snprintf(out, outsize, "%.0f", d);
}

void send_log_rcpt(const struct deliver_request *r, const struct deliver_rcpt *rc, const char *relay)
{
	char delay[32];
	const char *word = rc->status == DELIVER_OK ? "sent" : rc->status == DELIVER_TEMP ? "deferred" : "bounced";
	format_delay(r->arrival, delay, sizeof(delay));
	log_info("%s: to=<%s>, relay=%s, delay=%s, dsn=%s, status=%s (%s)", r->queue_id, rc->address, relay, delay,
		 rc->dsn, word, rc->text);
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

static void all_fail(struct deliver_request *r, enum deliver_status st, const char *dsn, const char *text)
{
	for (size_t i = 0; i < r->nrcpt; i++) {
		deliver_set_result(&r->rcpt[i], st, dsn, "%s", text);
		send_log_rcpt(r, &r->rcpt[i], "none");
	}
}

static int content_present(int msgfd, const struct deliver_request *r)
{
	struct stat st;
	if (fstat(msgfd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	unsigned long long size = (unsigned long long)st.st_size;
	return r->offset <= size && r->length <= size - r->offset;
}

void send_deliver_to(struct deliver_request *r, int msgfd, const struct send_targets *targets)
{
	struct send_attempt a;
	char text[DELIVER_MAX_TEXT];
	const char *relay = "none";

	memset(&a, 0, sizeof(a));
	a.r = r;
	a.msgfd = msgfd;
	a.state = xcalloc(r->nrcpt ? r->nrcpt : 1, sizeof(*a.state));
	for (size_t i = 0; i < r->nrcpt; i++)
		deliver_set_result(&r->rcpt[i], DELIVER_TEMP, "4.4.1", "delivery not attempted");

	for (size_t k = 0; k < targets->n; k++) {
		size_t open = 0;
		for (size_t i = 0; i < r->nrcpt; i++)
			if (a.state[i] != RCPT_DONE)
				open++;
		if (open == 0)
			break;

		const struct send_target *t = &targets->t[k];
		char ip[INET6_ADDRSTRLEN + 8];
		int port = 0;
		sock_addr_text((const struct sockaddr *)&t->sa, t->salen, ip, sizeof(ip), &port);
		snprintf(a.peer, sizeof(a.peer), "%s[%s]", t->name, ip);
		snprintf(a.relay, sizeof(a.relay), "%s[%s]:%d", t->name, ip, port);

		int fd = connect_timeout(t, connect_timeout_ms());
		if (fd < 0) {
			int e = errno;
			snprintf(text, sizeof(text), "connect to %s: %s", a.relay,
				 e == ETIMEDOUT ? "Connection timed out" : strerror(e));
			log_info("%s: %s", r->queue_id, text);
			for (size_t i = 0; i < r->nrcpt; i++)
				if (a.state[i] != RCPT_DONE)
					deliver_set_result(&r->rcpt[i], DELIVER_TEMP, "4.4.1", "%s", text);
			relay = "none";
			continue;
		}
		send_smtp_session(&a, fd);
		close(fd);
		relay = a.relay;
		for (size_t i = 0; i < r->nrcpt; i++)
			if (a.state[i] == RCPT_ACCEPTED) /* cannot happen: the session settles these */
				a.state[i] = RCPT_PENDING;
	}
	for (size_t i = 0; i < r->nrcpt; i++)
		if (a.state[i] != RCPT_DONE)
			send_log_rcpt(r, &r->rcpt[i], relay);
	free(a.state);
}

void send_deliver_request(struct deliver_request *r, int msgfd)
{
	struct send_nexthop nh;
	struct send_targets *targets;
	struct send_error err;

	if (r->nrcpt == 0)
		return;
	if (send_nexthop_parse(r->nexthop, &nh) < 0) {
		log_warning("%s: malformed nexthop \"%s\"", r->queue_id, r->nexthop);
		all_fail(r, DELIVER_TEMP, "4.3.5", "malformed nexthop in the transport configuration");
		return;
	}
	if (!content_present(msgfd, r)) {
		log_warning("%s: queue file is shorter than the delivery request", r->queue_id);
		all_fail(r, DELIVER_TEMP, "4.3.0", "error reading the queue file");
		return;
	}
	targets = xmalloc(sizeof(*targets));
	if (send_resolve(&nh, targets, &err) < 0)
		all_fail(r, err.status, err.dsn, err.text);
	else
		send_deliver_to(r, msgfd, targets);
	free(targets);
}

void send_serve(int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	(void)peer;
	(void)peerlen;
	deliver_serve(fd, SEND_REQUEST_TIMEOUT_MS, send_deliver_request);
}
