/*
 * local_worker — Maildir delivery processes kept for reuse, one per owner.
 *
 * A delivery to another uid used to fork a child per message that dropped
 * to the mailbox owner, wrote the file and exited.  At a thousand messages
 * a second, fork, exit and the copy-on-write faults between them were 44 %
 * of the local agent's CPU time (docs/benchmarks.md).  Now the first
 * Maildir delivery to an owner forks a worker that closes every descriptor
 * but its socket, drops to the owner for good (local_become: the same
 * checks as the per-message child) and then serves Maildir deliveries for
 * that uid/gid/groups, one at a time, over a SOCK_SEQPACKET socketpair: a
 * request record with the queue file's descriptor attached, a result record
 * back.  It holds exactly the privileges the per-message child held, for
 * longer: what it could spoil is that owner's own later mail, nobody
 * else's.  The agent validates every result as before.
 *
 * A worker idle for WORKER_IDLE_MS is closed by the agent before its next
 * use (the worker itself leaves after twice that, and at end of file when
 * the agent goes away); one is replaced after WORKER_MAX_USES deliveries.
 * Both ends wait with a receive timeout on the socket (SO_RCVTIMEO) rather
 * than a poll before every message.
 * If the request cannot be sent, the worker is dropped and one fresh worker
 * is tried; after that the caller forks the classic child.  A worker that
 * dies or stalls after it got the request is a temporary failure, like the
 * child was.  mbox, file and pipe deliveries keep the per-message child
 * (mbox locks and commands are per process on purpose).
 *
 * Public: local_worker_deliver.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "local.h"
#include "log.h"
#include "sock.h"

#define WORKER_MAX 4
#define WORKER_IDLE_MS 5000
#define WORKER_MAX_USES 1000
#define WORKER_SOCK 3 /* the worker's socket, after its descriptors are cleared */
/* Receive timeout on both ends of a worker's socket: a blocking recv gives
 * up after it, so neither side polls before each message. */
#define WORKER_RECV_SLICE_MS (2 * WORKER_IDLE_MS)

struct worker_req {
	struct local_dest d; /* orcpt is not sent (Maildir does not use it) */
	unsigned long long offset, length;
	char sender[ADDR_SIZE];
	struct deliver_rcpt rc;
};

struct worker_res {
	int status;
	char dsn[16];
	char text[DELIVER_MAX_TEXT];
};

struct worker {
	pid_t pid;
	int sock;
	uid_t uid;
	gid_t gid;
	char pw_name[ADDR_SIZE];
	long long used_ms;
	unsigned uses;
};

static struct worker workers[WORKER_MAX];
static int nworkers;

__attribute__((noreturn)) static void worker_main(void)
{
	static struct worker_req req;
	struct worker_res res;

	for (;;) {
		struct local_msg msg;
		int fd = -1;
		ssize_t n;

		/* Blocks at most WORKER_RECV_SLICE_MS (SO_RCVTIMEO): idle that
		 * long, the worker leaves. */
		n = sock_recv_fd(WORKER_SOCK, &fd, &req, sizeof(req));
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			_exit(0);
		if (n != (ssize_t)sizeof(req) || fd < 0 || req.d.kind != LOCAL_DEST_MAILDIR)
			_exit(n == 0 ? 0 : 1); /* end of file: the agent is done with us */
		req.d.orcpt = "";
		req.d.path[sizeof(req.d.path) - 1] = '\0';
		req.sender[sizeof(req.sender) - 1] = '\0';
		req.rc.address[sizeof(req.rc.address) - 1] = '\0';
		local_msg_init(&msg, fd, req.offset, req.length);
		maildir_deliver(&req.d, &msg, req.sender, req.rc.address, &req.rc);
		local_msg_free(&msg);
		close(fd);
		memset(&res, 0, sizeof(res));
		res.status = (int)req.rc.status;
		memcpy(res.dsn, req.rc.dsn, sizeof(res.dsn));
		memcpy(res.text, req.rc.text, sizeof(res.text));
		if (write_all(WORKER_SOCK, &res, sizeof(res)) < 0)
			_exit(1);
	}
}

/* SO_RCVTIMEO of WORKER_RECV_SLICE_MS on both sockets of sv.  0 or -1. */
static int set_recv_slice(const int sv[2])
{
	struct timeval tv = { .tv_sec = WORKER_RECV_SLICE_MS / 1000,
			      .tv_usec = (WORKER_RECV_SLICE_MS % 1000) * 1000 };

	for (int i = 0; i < 2; i++)
		if (setsockopt(sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
			return -1;
	return 0;
}

static int worker_spawn(const struct local_dest *d, struct worker *w)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (set_recv_slice(sv) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		/* Nothing of the agent's (its listener, status pipe, queue
		 * manager connection) stays open in a long-lived process. */
		if (dup2(sv[1], WORKER_SOCK) < 0 || close_range(WORKER_SOCK + 1, ~0U, 0) < 0)
			_exit(1);
		signal(SIGPIPE, SIG_IGN);
		local_become(d->uid, d->gid, d->pw_name);
		worker_main();
	}
	close(sv[1]);
	w->pid = pid;
	w->sock = sv[0];
	w->uid = d->uid;
	w->gid = d->gid;
	snprintf(w->pw_name, sizeof(w->pw_name), "%s", d->pw_name);
	w->used_ms = clock_ms();
	w->uses = 0;
	return 0;
}

static void worker_close(int i)
{
	int st;

	close(workers[i].sock);
	kill(workers[i].pid, SIGKILL); /* idle or misbehaving: nothing to finish */
	while (waitpid(workers[i].pid, &st, 0) < 0 && errno == EINTR)
		;
	workers[i] = workers[--nworkers];
}

/* The worker for d's owner, started if need be; -1 when none can be had. */
static int worker_for(const struct local_dest *d)
{
	long long now = clock_ms();
	int i;

	for (i = nworkers - 1; i >= 0; i--)
		if (now - workers[i].used_ms >= WORKER_IDLE_MS || workers[i].uses >= WORKER_MAX_USES)
			worker_close(i);
	for (i = 0; i < nworkers; i++)
		if (workers[i].uid == d->uid && workers[i].gid == d->gid && strcmp(workers[i].pw_name, d->pw_name) == 0)
			return i;
	if (nworkers == WORKER_MAX) {
		int oldest = 0;

		for (i = 1; i < nworkers; i++)
			if (workers[i].used_ms < workers[oldest].used_ms)
				oldest = i;
		worker_close(oldest);
	}
	if (worker_spawn(d, &workers[nworkers]) < 0)
		return -1;
	return nworkers++;
}

/* Read the result within the child time limit; 1 when it arrived whole.
 * Each recv blocks at most WORKER_RECV_SLICE_MS (SO_RCVTIMEO), so the limit
 * is kept to within one slice without a poll before every result. */
static int read_result(int sock, struct worker_res *res)
{
	long long deadline = clock_ms() + local_child_timeout() * 1000;

	for (;;) {
		ssize_t n = recv(sock, res, sizeof(*res), 0);

		if (n >= 0)
			return n == (ssize_t)sizeof(*res);
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || clock_ms() >= deadline)
			return 0;
	}
}

int local_worker_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			 struct deliver_rcpt *rc)
{
	static struct worker_req req;
	struct worker_res res;
	int attempt, i = -1, ok;

	memset(&req, 0, sizeof(req));
	req.d = *d;
	req.d.orcpt = NULL;
	req.offset = msg->offset;
	req.length = msg->length;
	snprintf(req.sender, sizeof(req.sender), "%s", sender);
	req.rc = *rc;
	for (attempt = 0; attempt < 2; attempt++) {
		if ((i = worker_for(d)) < 0)
			return -1;
		if (sock_send_fd(workers[i].sock, msg->fd, &req, sizeof(req)) == 0)
			break;
		/* It went away while idle (its own timeout, a crash): nothing was
		 * delivered, so a fresh one may try. */
		worker_close(i);
		i = -1;
	}
	if (i < 0)
		return -1;
	memset(&res, 0, sizeof(res));
	ok = read_result(workers[i].sock, &res);
	if (!ok) {
		log_warning("delivery worker %ld for %s failed or timed out", (long)workers[i].pid, rc->address);
		worker_close(i);
	} else {
		workers[i].uses++;
		workers[i].used_ms = clock_ms();
	}
	local_apply_result(rc, ok, res.status, res.dsn, sizeof(res.dsn), res.text, sizeof(res.text));
	return 0;
}
