/*
 * ctl_queue — ternctl's queue administration (commands in ctl_queue.h).
 *
 * Works on the files directly, with the same moves the queue manager
 * makes (one rename each), so it is safe while tern runs: a message the
 * queue manager holds in active/ and that is deleted or held here is
 * finished by it without a trace (its marks go to the open file, its final
 * rename finds nothing and it logs that the administrator moved it).
 * Queue IDs are checked with queueid_valid before they name a file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ctl_queue.h"
#include "proto_trigger.h"
#include "qfile.h"
#include "queueid.h"

#define EX_USAGE_CODE 64

/* The queues ternctl looks at, in mailq order, with their mailq marks. */
static const struct {
	const char *dir;
	char mark;
} queues[] = { { QDIR_ACTIVE, '*' }, { QDIR_INCOMING, ' ' }, { QDIR_DEFERRED, ' ' }, { QDIR_HOLD, '!' } };
#define NQUEUES (sizeof(queues) / sizeof(queues[0]))

typedef int (*msg_fn)(const char *dir, char mark, const char *qid, void *arg);

static int path_of(char *out, size_t size, const char *dir, const char *qid)
{
	return snprintf(out, size, "%s/%s/%s", cf.queue_directory, dir, qid) < (int)size ? 0 : -1;
}

/* Call fn for every message of every queue (or of the queue named only). */
static int each_message(const char *only, msg_fn fn, void *arg)
{
	char path[4096];
	size_t q;
	int rc = 0;

	for (q = 0; q < NQUEUES; q++) {
		DIR *d;
		struct dirent *de;

		if (only && strcmp(only, queues[q].dir) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, queues[q].dir);
		if (!(d = opendir(path))) {
			fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
			rc = 1;
			continue;
		}
		while ((de = readdir(d)) != NULL)
			if (queueid_valid(de->d_name))
				rc |= fn(queues[q].dir, queues[q].mark, de->d_name, arg);
		closedir(d);
	}
	return rc;
}

/* Read one message's envelope; 0, or -1 (the file went away or is bad). */
static int load(const char *dir, const char *qid, struct qf_envelope *e, struct stat *st)
{
	char path[4096], err[256];
	int fd, rc;

	if (path_of(path, sizeof(path), dir, qid) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fstat(fd, st) == 0 ? qf_read(fd, e, err, sizeof(err)) : -1;
	close(fd);
	return rc;
}

static const char *state_name(char st)
{
	switch (st) {
	case QF_PENDING: return "pending";
	case QF_DELIVERED: return "delivered";
	case QF_BOUNCED: return "bounced";
	case QF_SUCCESS: return "delivered";
	case QF_RELAYED: return "relayed";
	case QF_EXPANDED: return "expanded";
	}
	return "unknown";
}

/* ---- list ---- */

struct totals {
	unsigned long long bytes;
	unsigned long count;
	int json;
};

static void json_str(const char *s)
{
	const unsigned char *p;

	putchar('"');
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static int list_one(const char *dir, char mark, const char *qid, void *arg)
{
	struct totals *t = arg;
	struct qf_envelope e;
	struct stat st;
	char when[64];
	time_t arr;
	size_t i;
	int first = 1;

	if (load(dir, qid, &e, &st) < 0)
		return 0; /* delivered meanwhile, or corrupt: the queue manager deals with it */
	arr = (time_t)e.arrival;
	t->bytes += (unsigned long long)e.content_len;
	t->count++;
	if (t->json) {
		printf("{\"queue_name\": ");
		json_str(dir);
		printf(", \"queue_id\": \"%s\", \"arrival_time\": %lld, \"message_size\": %llu, \"sender\": ", qid,
		       e.arrival, e.content_len);
		json_str(e.sender);
		printf(", \"attempts\": %u, \"recipients\": [", e.attempts);
		for (i = 0; i < e.nrcpt; i++) {
			if (e.rcpt[i].state == QF_EXPANDED)
				continue;
			printf("%s{\"address\": ", first ? "" : ", ");
			first = 0;
			json_str(e.rcpt[i].address);
			printf(", \"state\": \"%s\"", state_name(e.rcpt[i].state));
			if (e.rcpt[i].state == QF_PENDING && *e.reason) {
				printf(", \"delay_reason\": ");
				json_str(e.reason);
			}
			putchar('}');
		}
		printf("]}\n");
	} else {
		strftime(when, sizeof(when), "%a %b %e %H:%M:%S", localtime(&arr));
		printf("%s%c %8llu %s  %s\n", qid, mark, e.content_len, when, *e.sender ? e.sender : "MAILER-DAEMON");
		if (*e.reason && strcmp(dir, QDIR_DEFERRED) == 0)
			printf("(%.200s)\n", e.reason);
		for (i = 0; i < e.nrcpt; i++)
			if (e.rcpt[i].state == QF_PENDING)
				printf("%*s%s\n", 41, "", e.rcpt[i].address);
		printf("\n");
	}
	qf_envelope_free(&e);
	return 0;
}

static int cmd_list(int json)
{
	struct totals t = { 0, 0, json };
	int rc;

	if (!json)
		printf("-Queue ID-            --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
	rc = each_message(NULL, list_one, &t);
	if (!json) {
		if (t.count == 0)
			printf("Mail queue is empty\n");
		else
			printf("-- %llu Kbytes in %lu Request%s.\n", (t.bytes + 1023) / 1024, t.count,
			       t.count == 1 ? "" : "s");
	}
	return rc;
}

/* ---- show ---- */

/* The queue a message is in, or NULL. */
static const char *find(const char *qid)
{
	char path[4096];
	struct stat st;
	size_t q;

	for (q = 0; q < NQUEUES; q++)
		if (path_of(path, sizeof(path), queues[q].dir, qid) == 0 && lstat(path, &st) == 0)
			return queues[q].dir;
	return NULL;
}

static int cmd_show(const char *qid)
{
	char path[4096], chunk[65536];
	struct qf_envelope e;
	struct stat st;
	const char *dir = queueid_valid(qid) ? find(qid) : NULL;
	unsigned long long off, left;
	size_t i;
	int fd;

	if (!dir || path_of(path, sizeof(path), dir, qid) < 0) {
		fprintf(stderr, "ternctl: %s: no such message\n", qid);
		return 1;
	}
	if (load(dir, qid, &e, &st) < 0) {
		fprintf(stderr, "ternctl: %s: cannot read it (delivered meanwhile, or corrupt)\n", qid);
		return 1;
	}
	printf("*** ENVELOPE RECORDS %s/%s ***\n", dir, qid);
	printf("arrival_time: %lld\nmessage_size: %llu\nsender: %s\nclient: %s\nenvid: %s\nattempts: %u\n",
	       e.arrival, e.content_len, e.sender, e.client, e.envid, e.attempts);
	if (*e.reason)
		printf("last_reason: %s\n", e.reason);
	for (i = 0; i < e.nrcpt; i++) {
		printf("recipient: %s (%s", e.rcpt[i].address, state_name(e.rcpt[i].state));
		if (e.rcpt[i].parent >= 0)
			printf(", expanded from %s", e.rcpt[i].parent < (long)e.nrcpt ? e.rcpt[e.rcpt[i].parent].address : "?");
		if (e.rcpt[i].orcpt)
			printf(", orcpt %s", e.rcpt[i].orcpt);
		printf(")\n");
	}
	printf("*** MESSAGE CONTENTS %s/%s ***\n", dir, qid);
	fflush(stdout);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	for (off = e.content_off, left = e.content_len; fd >= 0 && left > 0;) {
		ssize_t n = pread(fd, chunk, left < sizeof(chunk) ? (size_t)left : sizeof(chunk), (off_t)off);

		if (n <= 0 || fwrite(chunk, 1, (size_t)n, stdout) != (size_t)n)
			break;
		off += (unsigned long long)n;
		left -= (unsigned long long)n;
	}
	if (fd >= 0)
		close(fd);
	printf("*** END OF MESSAGE ***\n");
	qf_envelope_free(&e);
	return left == 0 && fd >= 0 ? 0 : 1;
}

/* ---- delete, hold, release, requeue ---- */

struct op {
	const char *cmd;
	unsigned long done;
};

static int move(const char *from, const char *to, const char *qid)
{
	char a[4096], b[4096];

	if (path_of(a, sizeof(a), from, qid) < 0 || path_of(b, sizeof(b), to, qid) < 0)
		return -1;
	if (strcmp(to, QDIR_INCOMING) == 0 || strcmp(to, QDIR_DEFERRED) == 0) {
		/* A deferred file's mtime is its next retry time: now. */
		struct timespec ts[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };

		if (utimensat(AT_FDCWD, a, ts, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
			return -1;
	}
	return rename(a, b);
}

static int op_one(const char *dir, char mark, const char *qid, void *arg)
{
	struct op *o = arg;
	char path[4096];
	int r = 0;

	(void)mark;
	if (strcmp(o->cmd, "delete") == 0) {
		if (path_of(path, sizeof(path), dir, qid) < 0 || unlink(path) < 0)
			r = -1;
	} else if (strcmp(o->cmd, "hold") == 0) {
		if (strcmp(dir, QDIR_HOLD) == 0)
			return 0;
		r = move(dir, QDIR_HOLD, qid);
	} else if (strcmp(o->cmd, "release") == 0) {
		if (strcmp(dir, QDIR_HOLD) != 0)
			return 0;
		r = move(dir, QDIR_INCOMING, qid);
	} else { /* requeue */
		if (strcmp(dir, QDIR_DEFERRED) != 0 && strcmp(dir, QDIR_HOLD) != 0)
			return 0;
		r = move(dir, QDIR_INCOMING, qid);
	}
	if (r < 0) {
		if (errno == ENOENT)
			return 0; /* finished meanwhile */
		fprintf(stderr, "ternctl: %s %s: %s\n", o->cmd, qid, strerror(errno));
		return 1;
	}
	o->done++;
	return 0;
}

static int cmd_op(const char *cmd, const char *target)
{
	struct op o = { cmd, 0 };
	int rc;

	if (strcmp(target, "ALL") == 0) {
		rc = each_message(NULL, op_one, &o);
	} else {
		const char *dir = queueid_valid(target) ? find(target) : NULL;

		if (!dir) {
			fprintf(stderr, "ternctl: %s: no such message\n", target);
			return 1;
		}
		rc = op_one(dir, ' ', target, &o);
	}
	printf("ternctl: %s: %lu message%s\n", cmd, o.done, o.done == 1 ? "" : "s");
	if (strcmp(cmd, "delete") != 0 && strcmp(cmd, "hold") != 0)
		trigger_send(cf.queue_directory, TRIGGER_REVIVE);
	return rc;
}

/* ---- flush ---- */

static int flush_one(const char *dir, char mark, const char *qid, void *arg)
{
	const char *domain = arg;
	struct qf_envelope e;
	struct stat st;
	size_t i;
	int hit = 0;

	(void)mark;
	if (load(dir, qid, &e, &st) < 0)
		return 0;
	for (i = 0; i < e.nrcpt && !hit; i++) {
		const char *at = strrchr(e.rcpt[i].address, '@');

		hit = e.rcpt[i].state == QF_PENDING && at && strcasecmp(at + 1, domain) == 0;
	}
	qf_envelope_free(&e);
	if (hit && move(dir, QDIR_INCOMING, qid) < 0 && errno != ENOENT) {
		fprintf(stderr, "ternctl: flush %s: %s\n", qid, strerror(errno));
		return 1;
	}
	return 0;
}

static int cmd_flush(const char *domain)
{
	int rc = 0;

	if (domain) {
		rc = each_message(QDIR_DEFERRED, flush_one, (void *)domain);
		trigger_send(cf.queue_directory, TRIGGER_REVIVE);
	} else {
		trigger_send(cf.queue_directory, TRIGGER_FLUSH);
	}
	return rc;
}

int ctl_queue_is_command(const char *cmd)
{
	static const char *const cmds[] = { "list", "show", "flush", "delete", "hold", "release", "requeue", NULL };
	int i;

	for (i = 0; cmds[i]; i++)
		if (strcmp(cmd, cmds[i]) == 0)
			return 1;
	return 0;
}

int ctl_queue(int argc, char **argv)
{
	const char *cmd = argv[0];

	if (strcmp(cmd, "list") == 0) {
		if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0))
			return EX_USAGE_CODE;
		return cmd_list(argc == 2);
	}
	if (strcmp(cmd, "flush") == 0)
		return argc > 2 ? EX_USAGE_CODE : cmd_flush(argc == 2 ? argv[1] : NULL);
	if (argc != 2)
		return EX_USAGE_CODE;
	if (strcmp(cmd, "show") == 0)
		return cmd_show(argv[1]);
	return cmd_op(cmd, argv[1]);
}
