/*
 * local_requeue — hand remote addresses from aliases/.forward back to the queue.
 *
 * The local agent never speaks SMTP itself: when an alias or a .forward
 * expands to addresses that are not local, it writes a new queue message
 * (qfw_begin/qfw_write/qfw_commit, the same durable path smtpd uses) with
 * the expanded recipients, the sender chosen by the expansion (owner-NAME
 * for lists) and the original content preceded by "Delivered-To: RCPT" (so
 * mail that comes back here is recognised as a loop), then triggers the
 * queue manager.  The original recipient counts as delivered once the
 * commit returned 0.
 *
 * Identity: queue files must belong to mail_owner (the queue manager opens
 * and updates them), so a root agent forks a child that drops to
 * mail_owner before it touches the queue; a non-root agent (development)
 * already is mail_owner and writes directly.  The child reports the new
 * queue ID (or a reason) over a pipe.
 *
 * Public: local_requeue.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "local.h"
#include "log.h"
#include "privs.h"
#include "proto_trigger.h"
#include "qfile.h"
#include "sock.h"

/* Write and commit the message.  0 with qid, or -1 with why. */
static int write_queue_file(const struct deliver_request *r, const struct local_msg *msg, const char *sender,
			    const char *rcpt, const char *rcpts, char *qid, char *why, size_t whysize)
{
	struct qf_envelope env;
	struct qf_writer w;
	char *chunk;
	int rc = 0;

	qf_envelope_init(&env);
	env.arrival = (long long)time(NULL);
	env.flags = r->flags;
	qf_set(&env.envid, r->envid);
	qf_set(&env.client, "local (forwarded by the local delivery agent)");
	qf_set(&env.sender, sender);
	for (const char *p = rcpts; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *a = strndup(p, n);
		if (a == NULL)
			log_fatal("out of memory");
		if (n > 0)
			qf_envelope_add_rcpt(&env, a, NULL, 0);
		free(a);
		p += n + (nl != NULL);
	}
	if (qfw_begin(&w, cf.queue_directory, &env) < 0) {
		snprintf(why, whysize, "cannot create a queue file: %s", strerror(errno));
		qf_envelope_free(&env);
		return -1;
	}
	char head[ADDR_SIZE + 32];
	int hn = snprintf(head, sizeof(head), "Delivered-To: %s\n", rcpt);
	if (hn > 0 && (size_t)hn < sizeof(head))
		qfw_write(&w, head, (size_t)hn);
	chunk = malloc(LOCAL_CHUNK);
	if (chunk == NULL)
		log_fatal("out of memory");
	for (unsigned long long pos = 0; pos < msg->length;) {
		ssize_t n = local_msg_pread(msg, pos, chunk, LOCAL_CHUNK);
		if (n <= 0) {
			snprintf(why, whysize, "cannot read the message: %s", n == 0 ? "short" : strerror(errno));
			rc = -1;
			break;
		}
		qfw_write(&w, chunk, (size_t)n);
		pos += (unsigned long long)n;
	}
	free(chunk);
	if (rc == 0 && qfw_commit(&w) < 0) {
		snprintf(why, whysize, "cannot queue the forwarded message: %s", strerror(errno));
		rc = -1;
	} else if (rc < 0) {
		qfw_abort(&w);
	}
	if (rc == 0) {
		str_copy(qid, QUEUEID_SIZE, env.qid);
		trigger_send(cf.queue_directory, TRIGGER_INCOMING);
	}
	qf_envelope_free(&env);
	return rc;
}

int local_requeue(const struct deliver_request *r, const struct local_msg *msg, const char *sender,
		  const char *rcpt, const char *rcpts, char *qid, char *why, size_t whysize)
{
	uid_t uid;
	gid_t gid;
	int pfd[2];
	char answer[QUEUEID_SIZE + 300];

	if (geteuid() != 0)
		return write_queue_file(r, msg, sender, rcpt, rcpts, qid, why, whysize);
	if (privs_lookup_user(cf.mail_owner, &uid, &gid) < 0 || uid == 0) {
		snprintf(why, whysize, "mail_owner %s unknown or root", cf.mail_owner);
		return -1;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(why, whysize, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whysize, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		privs_drop(uid, gid, NULL, NULL);
		int ok = write_queue_file(r, msg, sender, rcpt, rcpts, answer + 1, answer + 1, sizeof(answer) - 1);
		answer[0] = ok == 0 ? 'O' : 'F';
		_exit(write_all(pfd[1], answer, 1 + strlen(answer + 1)) < 0 ? 1 : 0);
	}
	close(pfd[1]);
	size_t got = 0;
	long long deadline = clock_ms() + 120 * 1000; /* monotonic: immune to clock jumps */
	while (got < sizeof(answer) - 1 && clock_ms() < deadline) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int pr = poll(&p, 1, 1000);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		ssize_t n = read(pfd[0], answer + got, sizeof(answer) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pfd[0]);
	answer[got] = '\0';
	int wst = 0;
	if (got == 0 || clock_ms() >= deadline)
		kill(pid, SIGKILL);
	while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
		;
	if (got > 1 && answer[0] == 'O' && WIFEXITED(wst) && WEXITSTATUS(wst) == 0) {
		if (str_copy(qid, QUEUEID_SIZE, answer + 1) == 0)
			return 0;
		/* An ID that does not fit cannot be ours; the message is queued
		 * anyway, so report success without it rather than duplicate. */
		str_copy(qid, QUEUEID_SIZE, "?");
		return 0;
	}
	snprintf(why, whysize, "%s", got > 1 ? answer + 1 : "forwarding process failed");
	return -1;
}
