/*
 * qmgr.h — the queue manager's internal interfaces.
 *
 * The queue manager is one process with one event loop.  It owns the
 * messages in active/ (struct qmsg), expands virtual aliases, splits the
 * pending recipients into delivery jobs per destination (transport + next
 * hop), runs jobs through the local and send agents within per-destination
 * concurrency limits (reusing an agent connection while the destination has
 * work), records each recipient's result in the queue file, and when a
 * message's jobs are all done it sends the DSNs it owes (failures, delays,
 * successes), then removes or defers it with exponential backoff.  The state
 * machine of the files is documented in queue/QUEUE.md.
 */
#ifndef TERN_QMGR_H
#define TERN_QMGR_H

#include <poll.h>
#include <time.h>

#include "buf.h"
#include "proto_deliver.h"
#include "qfile.h"
#include "resolve.h"

/* One recipient line of a DSN. */
enum notice_action { ACT_FAILED, ACT_DELAYED, ACT_DELIVERED, ACT_RELAYED };

struct notice {
	size_t idx; /* recipient index in the envelope */
	enum notice_action action;
	char dsn[16];
	char mta[DELIVER_MTA_MAX]; /* "" when no remote MTA answered */
	char text[DELIVER_MAX_TEXT];
};

struct qmsg {
	struct qmsg *next, *prev; /* the active list */
	char qid[QUEUEID_SIZE];
	int fd; /* read-write, on active/QID */
	struct qf_envelope env;
	double t_active;      /* when it entered active/ (for delays=) */
	int jobs_pending;     /* jobs waiting or in flight */
	char last_reason[DELIVER_MAX_TEXT];
	struct notice *fail;  /* permanent failures waiting for the bounce */
	size_t nfail;
	struct notice *succ;  /* success/relayed notices owed (states S, L) */
	size_t nsucc;
};

struct dest;

struct job {
	struct job *next; /* in its destination's wait list */
	struct qmsg *msg;
	struct dest *dest;
	struct deliver_request req;
	int sock;         /* connection to the agent, -1 while waiting */
	int reused;       /* sent on a connection an earlier job opened */
	struct buf resp;
	time_t started;
	double t_start;
	char why[DELIVER_MAX_TEXT]; /* set when the job is deferred without delivery */
};

struct dest {
	struct dest *next;
	enum transport transport;
	char nexthop[DELIVER_NEXTHOP_MAX];
	struct job *head, *tail; /* waiting jobs */
	int active;              /* jobs in flight */
	int limit;
};

/* qmgr_queue.c: the files */
extern int qdir_fd[8];
enum { QD_TMP, QD_INCOMING, QD_ACTIVE, QD_DEFERRED, QD_CORRUPT, QD_RECYCLE, QD_COUNT };
void queue_open_dirs(void);
int queue_scan_incoming(void);
int queue_scan_deferred(int all);
void queue_recover_active(void);
void queue_clean_tmp(void);
int queue_active_count(void);
void queue_finish(struct qmsg *m);
double now_f(void);

/* qmgr_sched.c: destinations and jobs */
void sched_message(struct qmsg *m);
int sched_dispatch(void);           /* start waiting jobs; returns jobs in flight */
int sched_pollfds(struct pollfd *pfd, int max, struct job **jobs);
void sched_io(struct job *j, short revents);
void sched_timeouts(time_t now);
void sched_parked_expire(void);     /* close agent connections idle too long */
void sched_forget_dead(void);       /* a flush: every destination gets a new chance */
void msg_record_failure(struct qmsg *m, size_t idx, const char *dsn, const char *mta, const char *text);
void msg_record_success(struct qmsg *m, size_t idx, enum notice_action a, const char *dsn, const char *mta,
			const char *text);
/* Log a recipient line the queue manager decided itself (no agent). */
void log_rcpt(const struct qmsg *m, size_t idx, const char *relay, const char *dsn, const char *status,
	      const char *text);

/* qmgr_expand.c: virtual aliases, before routing */
/* Expand recipient i of m (pending, not itself an expansion result); returns
 * 1 when it was replaced by its expansion (or failed), 0 to route it as
 * it is, -1 on a temporary failure (left pending). */
int expand_rcpt(struct qmsg *m, size_t i, const char *has_children);

/* qmgr_bounce.c: DSNs (RFC 3464) */
int notice_wanted(unsigned notify, enum notice_action a);
/* Queue one report to the sender (or the postmaster) for list[0..n); 0 or
 * -1 (nothing queued).  Mail from <> gets no report (failures of it go to
 * the postmaster once). */
int notice_create(struct qmsg *m, const struct notice *list, size_t n);

/* qmgr_clock.c: wall-clock jumps (see the file's header) */
time_t qclock_mono(void);  /* seconds on CLOCK_MONOTONIC: every timer of the queue manager */
void qclock_check(void);   /* once per loop pass: detect and record a jump */
/* A message's age for lifetimes and delay warnings: now - arrival, less the
 * forward clock jumps recorded since it arrived. */
long long qclock_age(long long arrival, time_t now);
/* A deferred file with retry time (mtime) retry is due at wall time now:
 * also when retry is more than maximal_backoff ahead (a backward jump). */
int qclock_retry_due(time_t retry, time_t now);

/* qmgr.c */
void qmgr_want_incoming(void);
void qmgr_run(void);

#endif
