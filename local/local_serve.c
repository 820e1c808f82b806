/*
 * local_serve — the local agent's request loop body.
 *
 * One connection from the queue manager carries one delivery request and
 * the queue file's descriptor (proto_deliver.h).  Every recipient gets a
 * result and one log line in the Postfix shape:
 *
 *   QUEUEID: to=<rcpt>, relay=local, delay=D, dsn=2.0.0, status=sent (delivered to maildir)
 *
 * A request that cannot be read is dropped without an answer (the queue
 * manager defers its recipients); a queue file shorter than the request
 * claims defers every recipient.
 *
 * Public: local_serve (server_prefork callback), local_deliver_request
 * (also the unit tests' entry point).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "local.h"
#include "log.h"

/* Seconds since arrival, formatted the way Postfix does (0.05, 1.2, 75). */
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

static const char *status_word(enum deliver_status st)
{
	return st == DELIVER_OK ? "sent" : st == DELIVER_TEMP ? "deferred" : "bounced";
}

void local_log_result(const struct deliver_request *r, const char *address, const char *orig_to,
		      const struct deliver_rcpt *rc)
{
	char delay[32];
	format_delay(r->arrival, delay, sizeof(delay));
	if (orig_to && strcasecmp(orig_to, address) != 0)
		log_info("%s: to=<%s>, orig_to=<%s>, relay=local, delay=%s, dsn=%s, status=%s (%s)", r->queue_id,
			 address, orig_to, delay, rc->dsn, status_word(rc->status), rc->text);
	else
		log_info("%s: to=<%s>, relay=local, delay=%s, dsn=%s, status=%s (%s)", r->queue_id, address, delay,
			 rc->dsn, status_word(rc->status), rc->text);
}


void local_deliver_request(struct deliver_request *r, int msgfd)
{
	struct local_msg msg;
	const char *fail = NULL;

	for (size_t i = 0; i < r->nrcpt; i++)
		deliver_set_result(&r->rcpt[i], DELIVER_TEMP, "4.3.0", "delivery not attempted");
	local_msg_init(&msg, msgfd, r->offset, r->length);
	if (!deliver_content_present(msgfd, r))
		fail = "queue file is shorter than the delivery request";
	else if (local_msg_scan(&msg) < 0)
		fail = "cannot read the message";
	if (fail)
		log_warning("%s: %s", r->queue_id, fail);

	for (size_t i = 0; i < r->nrcpt; i++) {
		struct deliver_rcpt *rc = &r->rcpt[i];
		if (fail) {
			deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "%s", fail);
			local_log_result(r, rc->address, NULL, rc);
		} else {
			local_expand_deliver(r, &msg, rc); /* logs each destination */
		}
	}
	local_msg_free(&msg);
}

void local_serve(int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	(void)peer;
	(void)peerlen;
	deliver_serve(fd, LOCAL_REQUEST_TIMEOUT_MS, local_deliver_request);
}
