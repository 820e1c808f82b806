/*
 * qmgr — the queue manager's event loop.
 *
 * One poll() over the trigger socket (inherited from the master as
 * MASTER_LISTEN_FD) and the connections to the delivery agents.  incoming/
 * is scanned when a trigger arrives and at least every minute (a lost
 * trigger only delays mail); deferred/ every queue_run_delay, or at once on
 * a flush trigger.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "proto_master.h"
#include "proto_trigger.h"
#include "qmgr.h"
#include "server.h"

#define INCOMING_SAFETY_SCAN 60
#define TMP_CLEAN_INTERVAL 3600
#define MAX_POLL 300
#define DRAIN_SECONDS 120

static int want_incoming = 1;

void qmgr_want_incoming(void)
{
	want_incoming = 1;
}

/* Drain the trigger socket; returns 1 when a flush was asked for. */
static int read_triggers(void)
{
	char buf[64];
	int flush = 0;
	ssize_t n, i;

	while ((n = recv(MASTER_LISTEN_FD, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		for (i = 0; i < n; i++) {
			if (buf[i] == TRIGGER_FLUSH)
				flush = 1;
			if (buf[i] == TRIGGER_REVIVE)
				sched_forget_dead(); /* the admin moved mail back into incoming/ */
			want_incoming = 1;
		}
	}
	return flush;
}

/*
 * Stopping (SIGTERM) or retiring (SIGHUP, the master reloads): start no new
 * delivery, but wait for the ones in flight so their results are recorded;
 * abandoning them would deliver those recipients twice after the restart.
 * The master's own grace period bounds this on SIGTERM.
 */
static void drain(struct pollfd *pfd, struct job **jobs)
{
	time_t until = qclock_mono() + DRAIN_SECONDS;
	int n, i;

	while ((n = sched_pollfds(pfd, MAX_POLL, jobs)) > 0 && qclock_mono() < until) {
		if (poll(pfd, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++)
			if (pfd[i].revents)
				sched_io(jobs[i], pfd[i].revents);
	}
}

/* Each loaded message holds its queue file open and each agent connection
 * a socket: ask for that many descriptors, up to the hard limit, instead of
 * meeting EMFILE at a soft limit (often 1024) set for interactive shells.
 * The reserve covers the directories, the log and the resolver. */
static void raise_nofile(void)
{
	rlim_t want = (rlim_t)cf.qmgr_message_active_limit + MAX_POLL + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		log_warning("RLIMIT_NOFILE hard limit %llu is below the %llu descriptors that "
			    "qmgr_message_active_limit %lld needs; loads will meet EMFILE and be retried",
			    (unsigned long long)rl.rlim_max, (unsigned long long)want,
			    cf.qmgr_message_active_limit);
		want = rl.rlim_max;
	}
	if (want <= rl.rlim_cur)
		return;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warning("raise RLIMIT_NOFILE to %llu: %s", (unsigned long long)want, strerror(errno));
}

void qmgr_run(void)
{
	struct pollfd pfd[MAX_POLL];
	struct job *jobs[MAX_POLL];
	char err[256];
	time_t last_incoming = 0, last_deferred = 0, last_tmp = 0;

	if (resolve_init(err, sizeof(err)) < 0)
		log_fatal("%s", err);
	raise_nofile();
	queue_open_dirs();
	queue_recover_active();

	while (!server_terminating) {
		time_t now = qclock_mono(); /* intervals: immune to wall-clock jumps */
		int n, i, flush = 0, timeout;

		qclock_check();
		if (now - last_tmp >= TMP_CLEAN_INTERVAL) {
			queue_clean_tmp();
			last_tmp = now;
		}
		if (want_incoming || now - last_incoming >= INCOMING_SAFETY_SCAN) {
			want_incoming = 0;
			last_incoming = now;
			if (queue_scan_incoming() > 0)
				want_incoming = 1; /* more may be waiting behind the active limit */
		}
		if (now - last_deferred >= cf.queue_run_delay) {
			last_deferred = now;
			queue_scan_deferred(0);
		}
		sched_dispatch();

		pfd[0].fd = MASTER_LISTEN_FD;
		pfd[0].events = POLLIN;
		n = 1 + sched_pollfds(pfd + 1, MAX_POLL - 1, jobs + 1);
		timeout = want_incoming ? 0 : 1000;
		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %s", strerror(errno));
		}
		if (pfd[0].revents)
			flush = read_triggers();
		for (i = 1; i < n; i++)
			if (pfd[i].revents)
				sched_io(jobs[i], pfd[i].revents);
		sched_timeouts(qclock_mono());
		sched_parked_expire();
		if (flush) {
			log_info("flush: retrying deferred mail now");
			sched_forget_dead();
			queue_scan_deferred(1);
		}
	}
	drain(pfd, jobs);
	sched_parked_expire();
	log_info("stopping");
}
