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
 *
 * Connection reuse: when a job's answer arrives and its destination has
 * another job waiting, the next request goes out on the same agent
 * connection (send then keeps its SMTP session to the next hop).  When none
 * is waiting, the connection is parked for AGENT_IDLE_MS (an idle agent
 * connection cache, like an SMTP client's connection cache) and the next job
 * for the same transport and next hop takes it: under steady traffic that
 * arrives one message at a time, that saves a connect, an accept and the
 * agent's own start of session per message, and send keeps its SMTP
 * session to the next hop open.  A parked connection still occupies an
 * agent process, so parked ones count against the agent's process limit
 * and the oldest is closed first when a fresh connection needs the room.
 *
 * Dead-destination memory: a remote job whose every recipient was deferred
 * without any remote MTA answering (no connection) marks its next hop dead
 * for minimal_backoff seconds; meanwhile its jobs are deferred at once,
 * without contacting an agent.  A flush forgets the dead list.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "qmgr.h"
#include "server.h"
#include "sock.h"
#include "strutil.h"
#include "xalloc.h"

#define JOB_TIMEOUT 3600 /* agents time out on their own; this only catches a wedged one */
#define AGENT_IDLE_MS 2000 /* parked agent connections: far below the agents' own request timeout */
#define AGENT_IDLE_MAX 64
#define MAX_INFLIGHT 256
#define RESPONSE_MAX (DELIVER_MAX_RCPT * (DELIVER_MAX_LINE + 2) + 64)

static struct dest *dests;
static struct dest *rr_next; /* where the next dispatch round starts */
static struct job *inflight[MAX_INFLIGHT];
static int ninflight;
static int agent_active[2]; /* in flight per agent: local, send */

#define DEAD_MAX 256
struct dead {
	enum transport transport;
	char nexthop[DELIVER_NEXTHOP_MAX];
	time_t until;
	char reason[DELIVER_MAX_TEXT];
};
static struct dead dead[DEAD_MAX];

static struct dead *dead_find(const struct dest *d, time_t now)
{
	int i;

	for (i = 0; i < DEAD_MAX; i++)
		if (dead[i].until > now && dead[i].transport == d->transport &&
		    strcmp(dead[i].nexthop, d->nexthop) == 0)
			return &dead[i];
	return NULL;
}

static void dead_mark(const struct dest *d, const char *reason, time_t now)
{
	struct dead *slot = dead_find(d, now);
	int i;

	for (i = 0; !slot && i < DEAD_MAX; i++)
		if (dead[i].until <= now)
			slot = &dead[i];
	if (!slot) { /* full: replace the one that expires first */
		slot = &dead[0];
		for (i = 1; i < DEAD_MAX; i++)
			if (dead[i].until < slot->until)
				slot = &dead[i];
	}
	slot->transport = d->transport;
	str_copy(slot->nexthop, sizeof(slot->nexthop), d->nexthop);
	slot->until = now + (cf.minimal_backoff > 0 ? cf.minimal_backoff : 1);
	str_copy(slot->reason, sizeof(slot->reason), reason);
	log_info("destination %s %s is unreachable (%s); mail for it waits %llds", transport_name(d->transport),
		 d->nexthop, reason, (long long)(slot->until - now));
}

void sched_forget_dead(void)
{
	memset(dead, 0, sizeof(dead));
}

void log_rcpt(const struct qmsg *m, size_t idx, const char *relay, const char *dsn, const char *status,
	      const char *text)
{
	double now = now_f();
	double a = m->t_active - (double)m->env.arrival, b = now - m->t_active;

	if (a < 0)
		a = 0;
	if (b < 0)
		b = 0;
	log_info("%s: to=<%s>, relay=%s, delay=%.2g, delays=%.2g/%.2g/0/0, dsn=%s, status=%s (%s)", m->qid,
		 m->env.rcpt[idx].address, relay, a + b, a, b, dsn, status, text);
}

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

static void notice_set(struct notice *f, size_t idx, enum notice_action a, const char *dsn, const char *mta,
		       const char *text)
{
	memset(f, 0, sizeof(*f));
	f->idx = idx;
	f->action = a;
	str_copy(f->dsn, sizeof(f->dsn), dsn);
	str_copy(f->mta, sizeof(f->mta), mta ? mta : "");
	str_copy(f->text, sizeof(f->text), text);
}

void msg_record_failure(struct qmsg *m, size_t idx, const char *dsn, const char *mta, const char *text)
{
	m->fail = xreallocarray(m->fail, m->nfail + 1, sizeof(*m->fail));
	notice_set(&m->fail[m->nfail++], idx, ACT_FAILED, dsn, mta, text);
}

void msg_record_success(struct qmsg *m, size_t idx, enum notice_action a, const char *dsn, const char *mta,
			const char *text)
{
	m->succ = xreallocarray(m->succ, m->nsucc + 1, sizeof(*m->succ));
	notice_set(&m->succ[m->nsucc++], idx, a, dsn, mta, text);
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
		j->req.flags = m->env.flags & (DELIVER_F_8BITMIME | DELIVER_F_SMTPUTF8 | DELIVER_F_RET_HDRS);
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

/* Route recipient i (pending, final address) and queue it for delivery. */
static void route_rcpt(struct qmsg *m, size_t i)
{
	struct qf_rcpt *r = &m->env.rcpt[i];
	struct route rt;

	if (resolve_address(r->address, &rt) < 0) {
		snprintf(m->last_reason, sizeof(m->last_reason), "address resolution failed: %s", strerror(errno));
		log_rcpt(m, i, "none", "4.3.0", "deferred", m->last_reason);
		return;
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
		log_rcpt(m, i, "none", dsn, "bounced", text);
		msg_record_failure(m, i, dsn, "", text);
		break;
	}
	case TR_DISCARD:
		log_rcpt(m, i, "none", "2.0.0", "sent", "discarded");
		if (qf_mark(m->fd, r, QF_DELIVERED) < 0)
			log_warning("%s: mark: %s", m->qid, strerror(errno));
		break;
	default:
		job_add_rcpt(m, dest_get(&rt), i);
	}
}

void sched_message(struct qmsg *m)
{
	char *has_children = xcalloc(m->env.nrcpt ? m->env.nrcpt : 1, 1);
	size_t i, n0 = m->env.nrcpt;

	for (i = 0; i < m->env.nrcpt; i++) {
		struct qf_rcpt *r = &m->env.rcpt[i];

		if (r->parent >= 0 && (size_t)r->parent < n0)
			has_children[r->parent] = 1;
		/* Owed success notices of a previous run (crash before the DSN). */
		if (r->state == QF_SUCCESS || r->state == QF_RELAYED)
			msg_record_success(m, i, r->state == QF_SUCCESS ? ACT_DELIVERED : ACT_RELAYED, "2.0.0", "",
					   r->state == QF_SUCCESS ? "delivered" : "relayed to a non-DSN next hop");
	}
	/* The loop bound grows as expansions append recipients. */
	for (i = 0; i < m->env.nrcpt; i++) {
		if (m->env.rcpt[i].state != QF_PENDING)
			continue;
		if (i < n0 && expand_rcpt(m, i, has_children) != 0)
			continue;
		route_rcpt(m, i);
	}
	free(has_children);
	if (m->jobs_pending == 0)
		queue_finish(m);
}

/* Parked agent connections, oldest first. */
struct parked {
	int sock;
	enum transport transport;
	char nexthop[DELIVER_NEXTHOP_MAX];
	long long since_ms;
};
static struct parked parked[AGENT_IDLE_MAX];
static int nparked;
static int agent_parked[2]; /* per agent: local, send */

static void parked_close(int i)
{
	close(parked[i].sock);
	agent_parked[agent_of(parked[i].transport)]--;
	memmove(&parked[i], &parked[i + 1], (size_t)(nparked - i - 1) * sizeof(parked[0]));
	nparked--;
}

/* Keep an agent connection whose job is done for the next job. */
static void park(int sock, const struct dest *d)
{
	if (server_terminating || AGENT_IDLE_MS <= 0) {
		close(sock);
		return;
	}
	if (nparked == AGENT_IDLE_MAX)
		parked_close(0);
	parked[nparked].sock = sock;
	parked[nparked].transport = d->transport;
	str_copy(parked[nparked].nexthop, sizeof(parked[nparked].nexthop), d->nexthop);
	parked[nparked].since_ms = clock_ms();
	agent_parked[agent_of(d->transport)]++;
	nparked++;
}

/*
 * A parked connection for d, or -1.  The local agent serves any local
 * recipient on one connection; send's kept SMTP session is per next hop,
 * so send connections are matched on it.  One the agent closed meanwhile
 * (its idle or use limit, a reload) reads as end of file and is dropped.
 */
static int unpark(const struct dest *d)
{
	int i;

	for (i = nparked - 1; i >= 0; i--) {
		struct pollfd p = { parked[i].sock, POLLIN, 0 };
		int s;

		if (parked[i].transport != d->transport ||
		    (d->transport != TR_LOCAL && strcmp(parked[i].nexthop, d->nexthop) != 0))
			continue;
		if (poll(&p, 1, 0) != 0) { /* no request is open: anything readable is a close */
			parked_close(i);
			continue;
		}
		s = parked[i].sock;
		agent_parked[agent_of(d->transport)]--;
		memmove(&parked[i], &parked[i + 1], (size_t)(nparked - i - 1) * sizeof(parked[0]));
		nparked--;
		return s;
	}
	return -1;
}

/* Close what has been parked too long; all of it when stopping. */
void sched_parked_expire(void)
{
	long long now = clock_ms();

	while (nparked > 0 && (server_terminating || now - parked[0].since_ms >= AGENT_IDLE_MS))
		parked_close(0);
}

/* Make room under the agent's process limit for a fresh connection. */
static void parked_make_room(int agent)
{
	int i;

	for (i = 0; i < nparked && agent_parked[agent] > 0 &&
		    agent_active[agent] + agent_parked[agent] >= cf.default_process_limit;)
		if (agent_of(parked[i].transport) == agent)
			parked_close(i);
		else
			i++;
}

/* Send j's request with a read-only queue file fd on the agent connection s. */
static int job_send(struct job *j, int s)
{
	struct buf req;
	int fd = -1, rc = -1;

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
	/* Agent sockets stay blocking for this write; sched_io reads them
	 * with MSG_DONTWAIT, so no mode switch per message.  The whole request
	 * goes in one sendmsg with the descriptor, so the agent usually reads
	 * it in one call. */
	if (sock_send_fd_all(s, fd, req.data, req.len) < 0) {
		log_warning("%s: send request to the %s agent: %s", j->msg->qid, transport_name(j->dest->transport),
			    strerror(errno));
		goto out;
	}
	j->sock = s;
	j->started = qclock_mono();
	j->t_start = now_f();
	buf_reset(&j->resp);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	buf_free(&req);
	return rc;
}

/* Connect to the agent and send the request. */
static int job_start(struct job *j)
{
	char path[4096];
	int s;

	while ((s = unpark(j->dest)) >= 0) {
		if (job_send(j, s) == 0) {
			j->reused = 1; /* an agent that went away meanwhile: requeue_job */
			return 0;
		}
		close(s);
	}
	parked_make_room(agent_of(j->dest->transport));
	snprintf(path, sizeof(path), "%s/%s", cf.queue_directory,
		 j->dest->transport == TR_LOCAL ? DELIVER_SOCKET_LOCAL : DELIVER_SOCKET_SEND);
	s = sock_unix_connect(path);
	if (s < 0) {
		log_warning("connect to %s: %s", path, strerror(errno));
		return -1;
	}
	if (job_send(j, s) < 0) {
		close(s);
		return -1;
	}
	return 0;
}

static void inflight_remove(struct job *j)
{
	int i;

	for (i = 0; i < ninflight; i++)
		if (inflight[i] == j) {
			inflight[i] = inflight[--ninflight];
			return;
		}
}

/* The destination failed as a whole: no recipient reached a remote MTA. */
static int site_failure(const struct job *j)
{
	size_t i;

	if (j->dest->transport != TR_SMTP || j->req.nrcpt == 0)
		return 0;
	for (i = 0; i < j->req.nrcpt; i++)
		if (j->req.rcpt[i].status != DELIVER_TEMP || j->req.rcpt[i].mta[0])
			return 0;
	return 1;
}

/* Pass the agent connection of a finished job to the destination's next
 * waiting job; 1 when it was taken. */
static int reuse_connection(struct job *done)
{
	struct dest *d = done->dest;
	struct job *j;

	/* A stopping or retiring queue manager starts nothing new. */
	if (!d->head || dead_find(d, qclock_mono()) || server_terminating)
		return 0;
	j = d->head;
	d->head = j->next;
	if (!d->head)
		d->tail = NULL;
	j->next = NULL;
	buf_init(&j->resp, RESPONSE_MAX);
	if (job_send(j, done->sock) < 0) {
		/* Put it back first in line; the connection is closed by the caller. */
		buf_free(&j->resp);
		j->next = d->head;
		d->head = j;
		if (!d->tail)
			d->tail = j;
		return 0;
	}
	j->reused = 1;
	inflight[ninflight++] = j;
	return 1;
}

/*
 * The agent closed a reused connection before answering: it most likely
 * went away between two requests (its idle or reuse limit, or a reload),
 * racing our request.  That is no delivery failure: put the job back first
 * in line to go out on a fresh connection.
 */
static void requeue_job(struct job *j)
{
	struct dest *d = j->dest;

	inflight_remove(j);
	close(j->sock);
	j->sock = -1;
	j->reused = 0;
	d->active--;
	agent_active[agent_of(d->transport)]--;
	buf_free(&j->resp);
	j->next = d->head;
	d->head = j;
	if (!d->tail)
		d->tail = j;
}

/* Apply the agent's per-recipient results (or a blanket deferral). */
static void job_done(struct job *j, const char *agent_error)
{
	struct qmsg *m = j->msg;
	struct dest *d = j->dest;
	time_t now = qclock_mono(); /* dead-destination times are monotonic */
	size_t i;

	for (i = 0; i < j->req.nrcpt; i++) {
		struct deliver_rcpt *rc = &j->req.rcpt[i];
		struct qf_rcpt *r = &m->env.rcpt[rc->idx];
		int want_success = notice_wanted(r->notify, ACT_DELIVERED) && *m->env.sender;

		if (agent_error) {
			snprintf(m->last_reason, sizeof(m->last_reason), "%s", agent_error);
			/* The agents log their own results; these never reached one. */
			log_rcpt(m, rc->idx, j->sock >= 0 ? transport_name(d->transport) : "none", "4.3.0", "deferred",
				 agent_error);
			continue;
		}
		if (rc->status == DELIVER_OK || rc->status == DELIVER_RELAYED) {
			char st = QF_DELIVERED;

			if (want_success) {
				enum notice_action a = rc->status == DELIVER_OK ? ACT_DELIVERED : ACT_RELAYED;

				st = a == ACT_DELIVERED ? QF_SUCCESS : QF_RELAYED;
				msg_record_success(m, rc->idx, a, rc->dsn, rc->mta, rc->text);
			}
			if (qf_mark(m->fd, r, (enum qf_state)st) < 0)
				log_warning("%s: mark delivered: %s", m->qid, strerror(errno));
		} else if (rc->status == DELIVER_PERM) {
			msg_record_failure(m, rc->idx, rc->dsn, rc->mta, rc->text);
		} else {
			snprintf(m->last_reason, sizeof(m->last_reason), "%s", rc->text);
		}
	}
	/* One flush per job makes "delivered" durable before we forget it —
	 * unless this was the message's last job: queue_finish then either
	 * removes the file (a crash before that only delivers again, inside the
	 * crash window we already accept) or flushes it before deferring.
	 * That saves one disk flush for most messages. */
	if (m->jobs_pending > 1 && fdatasync(m->fd) < 0)
		log_warning("%s: fdatasync: %s", m->qid, strerror(errno));
	if (!agent_error && site_failure(j))
		dead_mark(d, j->req.rcpt[0].text, now);

	if (j->sock >= 0) {
		inflight_remove(j);
		if (agent_error || !reuse_connection(j)) {
			if (agent_error)
				close(j->sock);
			else
				park(j->sock, d);
			d->active--;
			agent_active[agent_of(d->transport)]--;
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

			struct dead *dd = d->head ? dead_find(d, qclock_mono()) : NULL;

			if (dd) {
				/* Defer every waiting job without a connection attempt
				 * (finished after the round: job_done may free d). */
				while (d->head) {
					struct job *j = d->head;

					d->head = j->next;
					snprintf(j->why, sizeof(j->why), "delivery temporarily suspended: %.900s",
						 dd->reason);
					j->next = failed;
					failed = j;
					d->active++; /* pinned until its job_done below */
				}
				d->tail = NULL;
			} else if (d->head && d->active < d->limit && agent_active[agent] < cf.default_process_limit &&
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
					inflight[ninflight++] = j;
				} else {
					/* Finished after the round: job_done may free d. */
					snprintf(j->why, sizeof(j->why), "delivery agent unavailable");
					j->next = failed;
					failed = j;
					d->active++; /* pinned until its job_done below */
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
		j->dest->active--; /* unpinned: the last job_done may free the destination */
		job_done(j, j->why);
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
		n = recv(j->sock, chunk, sizeof(chunk), MSG_DONTWAIT);
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
	if (n <= 0 && j->resp.len == 0 && j->reused) {
		requeue_job(j);
		return;
	}
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
