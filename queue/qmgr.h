/*
 * qmgr.h — the queue manager's internal interfaces.
 *
 * The queue manager is one process with one event loop.  It owns the
 * messages in active/ (struct qmsg), splits their pending recipients into
 * delivery jobs per destination (transport + next hop), runs jobs through
 * the local and send agents within per-destination concurrency limits,
 * records each recipient's result in the queue file, and when a message's
 * jobs are all done it removes it, bounces its failures, or defers it with
 * backoff.  The state machine of the files is documented in queue/QUEUE.md.
 */
#ifndef TERN_QMGR_H
#define TERN_QMGR_H

#include <poll.h>
#include <time.h>

#include "buf.h"
#include "proto_deliver.h"
#include "qfile.h"
#include "resolve.h"

struct failure {
	size_t idx; /* recipient index in the envelope */
	char dsn[16];
	char text[DELIVER_MAX_TEXT];
};

struct qmsg {
	struct qmsg *next, *prev; /* the active list */
	char qid[QUEUEID_SIZE];
	int fd; /* read-write, on active/QID */
	struct qf_envelope env;
	int jobs_pending;     /* jobs waiting or in flight */
	int deferred;         /* a recipient was deferred in this pass */
	char last_reason[DELIVER_MAX_TEXT];
	struct failure *fail; /* permanent failures waiting for the bounce */
	size_t nfail;
};

struct dest;

struct job {
	struct job *next; /* in its destination's wait list */
	struct qmsg *msg;
	struct dest *dest;
	struct deliver_request req;
	int sock;         /* connection to the agent, -1 while waiting */
	struct buf resp;
	time_t started;
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
enum { QD_TMP, QD_INCOMING, QD_ACTIVE, QD_DEFERRED, QD_CORRUPT, QD_COUNT };
void queue_open_dirs(void);
int queue_scan_incoming(void);
int queue_scan_deferred(int all);
void queue_recover_active(void);
void queue_clean_tmp(void);
int queue_active_count(void);
void queue_finish(struct qmsg *m);

/* qmgr_sched.c: destinations and jobs */
void sched_message(struct qmsg *m);
int sched_dispatch(void);           /* start waiting jobs; returns jobs in flight */
int sched_pollfds(struct pollfd *pfd, int max, struct job **jobs);
void sched_io(struct job *j, short revents);
void sched_timeouts(time_t now);
void msg_record_failure(struct qmsg *m, size_t idx, const char *dsn, const char *text);

/* qmgr_bounce.c */
int bounce_create(struct qmsg *m);

/* qmgr.c */
void qmgr_want_incoming(void);
void qmgr_run(void);

#endif
