/*
 * qmgr_sched — destinations, delivery jobs and the conversation with the
 * delivery agents.
 *
 * A destination is (transport, next hop).  Recipients of one message for
 * one destination share a job (up to default_destination_recipient_limit).
 * Jobs wait in their destination's FIFO; sched_dispatch starts them
 * round-robin across destinations so one slow or busy destination never
 * holds back the others, within each destination's concurrency limit and a
 * per-agent total that stays below the agents' listen backlog.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "qmgr.h"
#include "sock.h"
#include "strutil.h"
#include "xalloc.h"

#define JOB_TIMEOUT 3600 /* agents time out on their own; this only catches a wedged one */
#define MAX_INFLIGHT 256
#define RESPONSE_MAX (DELIVER_MAX_RCPT * (DELIVER_MAX_LINE + 2) + 64)

static struct dest *dests;
static struct dest *rr_next; /* where the next dispatch round starts */
static struct job *inflight[MAX_INFLIGHT];
static int ninflight;
static int agent_active[2]; /* in flight per agent: local, send */

static int agent_of(enum transport t)
{
	return t == TR_LOCAL ? 0 : 1;
}

static struct dest *dest_get(const struct route *rt)
{
	struct dest *d;

	for (d = dests; d; d = d->next)
		if (d->transport == rt->transport && strcmp(d->nexthop, rt->nexthop) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->transport = rt->transport;
	str_copy(d->nexthop, sizeof(d->nexthop), rt->nexthop);
	d->limit = (int)(rt->transport == TR_LOCAL ? cf.local_destination_concurrency_limit
						   : cf.default_destination_concurrency_limit);
	if (d->limit < 1)
		d->limit = 1;
	d->next = dests;
	dests = d;
	return d;
}

static void dest_release(struct dest *d)
{
	struct dest **pp;

	if (d->head || d->active > 0)
		return;
	if (rr_next == d)
		rr_next = d->next;
	for (pp = &dests; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			free(d);
			return;
		}
	}
}

void msg_record_failure(struct qmsg *m, size_t idx, const char *dsn, const char *text)
{
	struct failure *f;

	m->fail = xreallocarray(m->fail, m->nfail + 1, sizeof(*m->fail));
	f = &m->fail[m->nfail++];
	f->idx = idx;
	str_copy(f->dsn, sizeof(f->dsn), dsn);
	str_copy(f->text, sizeof(f->text), text);
}

/* Add recipient i of m to a job for destination d (the tail job when it is
 * the same message's and has room, else a new one). */
static void job_add_rcpt(struct qmsg *m, struct dest *d, size_t i)
{
	struct job *j = d->tail;
	size_t limit = cf.default_destination_recipient_limit > 0 ? (size_t)cf.default_destination_recipient_limit : 1;

	if (d->transport == TR_LOCAL)
		limit = 1; /* each local recipient is its own delivery (its own uid) */
	if (limit > DELIVER_MAX_RCPT)
		limit = DELIVER_MAX_RCPT;
	if (!j || j->msg != m || j->req.nrcpt >= limit) {
		j = xcalloc(1, sizeof(*j));
		j->msg = m;
		j->dest = d;
		j->sock = -1;
		deliver_request_init(&j->req);
		str_copy(j->req.queue_id, sizeof(j->req.queue_id), m->qid);
		str_copy(j->req.sender, sizeof(j->req.sender), m->env.sender);
		str_copy(j->req.nexthop, sizeof(j->req.nexthop), d->nexthop);
		j->req.offset = m->env.content_off;
		j->req.length = m->env.content_len;
		j->req.arrival = m->env.arrival;
		j->req.flags = m->env.flags;
		str_copy(j->req.envid, sizeof(j->req.envid), m->env.envid);
		if (d->tail)
			d->tail->next = j;
		else
			d->head = j;
		d->tail = j;
		m->jobs_pending++;
	}
	{
		struct deliver_rcpt *rc = deliver_request_add(&j->req, (unsigned)i, m->env.rcpt[i].notify,
							      m->env.rcpt[i].address);

		if (m->env.rcpt[i].orcpt)
			str_copy(rc->orcpt, sizeof(rc->orcpt), m->env.rcpt[i].orcpt);
	}
}

void sched_message(struct qmsg *m)
{
	struct route rt;
	size_t i;

	for (i = 0; i < m->env.nrcpt; i++) {
		struct qf_rcpt *r = &m->env.rcpt[i];

		if (r->state != QF_PENDING)
			continue;
		if (resolve_address(r->address, &rt) < 0) {
			snprintf(m->last_reason, sizeof(m->last_reason), "address resolution failed: %s",
				 strerror(errno));
			log_info("%s: to=<%s>, relay=none, dsn=4.3.0, status=deferred (%s)", m->qid, r->address,
				 m->last_reason);
			continue;
		}
		switch (rt.transport) {
		case TR_ERROR: {
			char dsn[16] = "5.0.0";
			const char *text = rt.error;
			const char *sp = strchr(rt.error, ' ');

			if (sp && (size_t)(sp - rt.error) < sizeof(dsn) && (rt.error[0] == '4' || rt.error[0] == '5')) {
				memcpy(dsn, rt.error, (size_t)(sp - rt.error));
				dsn[sp - rt.error] = 0;
				text = sp + 1;
			}
			dsn[0] = '5'; /* an error: transport is final */
			log_info("%s: to=<%s>, relay=none, dsn=%s, status=bounced (%s)", m->qid, r->address, dsn, text);
			msg_record_failure(m, i, dsn, text);
			break;
		}
		case TR_DISCARD:
			log_info("%s: to=<%s>, relay=none, dsn=2.0.0, status=sent (discarded)", m->qid, r->address);
			if (qf_mark(m->fd, r, QF_DELIVERED) < 0)
				log_warning("%s: mark: %s", m->qid, strerror(errno));
			break;
		default:
			job_add_rcpt(m, dest_get(&rt), i);
		}
	}
	if (m->jobs_pending == 0)
		queue_finish(m);
}

/* Connect to the agent and send the request with a read-only queue file fd. */
static int job_start(struct job *j)
{
	char path[4096];
	struct buf req;
	int fd = -1, s = -1, rc = -1;

	snprintf(path, sizeof(path), "%s/%s", cf.queue_directory,
		 j->dest->transport == TR_LOCAL ? DELIVER_SOCKET_LOCAL : DELIVER_SOCKET_SEND);
	buf_init(&req, DELIVER_MAX_REQUEST);
	if (deliver_encode_request(&j->req, &req) < 0) {
		log_warning("%s: cannot encode a delivery request", j->msg->qid);
		goto out;
	}
	fd = openat(qdir_fd[QD_ACTIVE], j->msg->qid, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		log_warning("%s: open for delivery: %s", j->msg->qid, strerror(errno));
		goto out;
	}
	s = sock_unix_connect(path);
	if (s < 0) {
		log_warning("connect to %s: %s", path, strerror(errno));
		goto out;
	}
	if (sock_send_fd(s, fd, req.data, 1) < 0 || write_all(s, req.data + 1, req.len - 1) < 0) {
		log_warning("%s: send request to %s: %s", j->msg->qid, path, strerror(errno));
		goto out;
	}
	if (fd_set_nonblock(s, 1) < 0)
		goto out;
	j->sock = s;
	s = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (s >= 0)
		close(s);
	buf_free(&req);
	return rc;
}

/* Apply the agent's per-recipient results (or a blanket deferral). */
static void job_done(struct job *j, const char *agent_error)
{
	struct qmsg *m = j->msg;
	struct dest *d = j->dest;
	size_t i;
	int i2;

	for (i = 0; i < j->req.nrcpt; i++) {
		struct deliver_rcpt *rc = &j->req.rcpt[i];
		struct qf_rcpt *r = &m->env.rcpt[rc->idx];

		if (agent_error) {
			snprintf(m->last_reason, sizeof(m->last_reason), "%s", agent_error);
			log_info("%s: to=<%s>, relay=%s, dsn=4.3.0, status=deferred (%s)", m->qid, r->address,
				 transport_name(d->transport), agent_error);
			continue;
		}
		if (rc->status == DELIVER_OK || rc->status == DELIVER_RELAYED) {
			if (qf_mark(m->fd, r, QF_DELIVERED) < 0)
				log_warning("%s: mark delivered: %s", m->qid, strerror(errno));
		} else if (rc->status == DELIVER_PERM) {
			msg_record_failure(m, rc->idx, rc->dsn, rc->text);
		} else {
			snprintf(m->last_reason, sizeof(m->last_reason), "%s", rc->text);
		}
	}
	/* One flush per job makes "delivered" durable before we forget it. */
	if (fdatasync(m->fd) < 0)
		log_warning("%s: fdatasync: %s", m->qid, strerror(errno));

	if (j->sock >= 0) {
		close(j->sock);
		d->active--;
		agent_active[agent_of(d->transport)]--;
		for (i2 = 0; i2 < ninflight; i2++)
			if (inflight[i2] == j) {
				inflight[i2] = inflight[--ninflight];
				break;
			}
	}
	deliver_request_free(&j->req);
	buf_free(&j->resp);
	free(j);
	dest_release(d);
	if (--m->jobs_pending == 0)
		queue_finish(m);
}

/* Start waiting jobs, one per destination per round, until limits bind. */
int sched_dispatch(void)
{
	struct job *failed = NULL;
	int progress = 1;

	while (progress && ninflight < MAX_INFLIGHT) {
		struct dest *d, *start = rr_next ? rr_next : dests;

		progress = 0;
		if (!start)
			break;
		d = start;
		do {
			struct dest *next = d->next ? d->next : dests;
			int agent = agent_of(d->transport);

			if (d->head && d->active < d->limit && agent_active[agent] < cf.default_process_limit &&
			    ninflight < MAX_INFLIGHT) {
				struct job *j = d->head;

				d->head = j->next;
				if (!d->head)
					d->tail = NULL;
				j->next = NULL;
				buf_init(&j->resp, RESPONSE_MAX);
				if (job_start(j) == 0) {
					d->active++;
					agent_active[agent]++;
					j->started = time(NULL);
					inflight[ninflight++] = j;
				} else {
					/* Finished after the round: job_done may free d. */
					j->next = failed;
					failed = j;
				}
				progress = 1;
				rr_next = next; /* the next round starts after d */
			}
			d = next;
		} while (d && d != start && dests);
	}
	while (failed) {
		struct job *j = failed;

		failed = j->next;
		job_done(j, "delivery agent unavailable");
	}
	return ninflight;
}

int sched_pollfds(struct pollfd *pfd, int max, struct job **jobs)
{
	int i, n = 0;

	for (i = 0; i < ninflight && n < max; i++) {
		pfd[n].fd = inflight[i]->sock;
		pfd[n].events = POLLIN;
		jobs[n++] = inflight[i];
	}
	return n;
}

static int response_complete(const struct buf *b)
{
	return b->len >= 4 && memcmp(b->data + b->len - 4, "end\n", 4) == 0 &&
	       (b->len == 4 || b->data[b->len - 5] == '\n');
}

void sched_io(struct job *j, short revents)
{
	char chunk[8192];
	char err[256];
	ssize_t n;

	(void)revents;
	for (;;) {
		n = read(j->sock, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break;
	}
	if (n > 0 && buf_append(&j->resp, chunk, (size_t)n) < 0) {
		job_done(j, "delivery agent response too long");
		return;
	}
	if (n > 0 && !response_complete(&j->resp))
		return;
	if (n <= 0 && !response_complete(&j->resp)) {
		job_done(j, "delivery agent closed the connection without a result");
		return;
	}
	if (deliver_decode_response(j->resp.data, j->resp.len, &j->req, err, sizeof(err)) < 0) {
		log_warning("%s: bad response from the %s agent: %s", j->msg->qid, transport_name(j->dest->transport),
			    err);
		job_done(j, "malformed response from the delivery agent");
		return;
	}
	job_done(j, NULL);
}

void sched_timeouts(time_t now)
{
	int i;

	for (i = ninflight - 1; i >= 0; i--)
		if (now - inflight[i]->started > JOB_TIMEOUT)
			job_done(inflight[i], "delivery agent timed out");
}
