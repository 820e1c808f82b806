/*
 * qmgr_clock — the queue manager's defence against wall-clock jumps.
 *
 * The queue stores wall-clock times: each message's arrival (the T record,
 * which queue lifetimes and delay warnings are measured from) and, as the
 * mtime of a file in deferred/, its next retry time.  An NTP step or an
 * admin's `date` moves the wall clock; the queue manager's own timers
 * (scan intervals, dead destinations, agent time-outs) therefore run on
 * CLOCK_MONOTONIC (qclock_mono), and this module handles what is stored:
 *
 *   qclock_check()   once per event-loop pass: how far did the wall clock
 *                    move since the last pass, compared with CLOCK_BOOTTIME
 *                    (monotonic, and counting a suspend, so a resumed laptop
 *                    is not a jump)?  A difference over QCLOCK_JUMP_MIN
 *                    seconds is a jump, logged as a warning.
 *   forward jump     of J seconds: every message that arrived before it
 *                    would look J seconds older, and a jump of ten days would
 *                    expire (4.4.7) all of it at once.  The jump is appended
 *                    to the journal queue_directory/private/clock ("J BEFORE
 *                    AFTER": the wall clock just before and after it) and
 *                    qclock_age() subtracts J from the age of every message
 *                    whose arrival is before BEFORE.  Mail that arrives after
 *                    the jump has arrival >= AFTER > BEFORE and is unaffected.
 *                    The journal is written tmp -> fsync -> rename -> fsync of
 *                    private/, so the correction survives a restart; entries
 *                    older than any message could be are dropped.
 *   backward jump    retry times stored before it lie far in the future:
 *                    qclock_retry_due() treats a retry time more than
 *                    maximal_backoff ahead as due now (the retry stores a new
 *                    one).  Ages of older mail shrink by the jump, i.e. their
 *                    lifetimes grow by it (mail is kept longer, never expired
 *                    early); this is not corrected, because after a backward
 *                    jump an arrival time alone does not tell whether the
 *                    message came before or after it.
 *
 * Not seen: a jump while no queue manager runs (the first pass of a new one
 * only sets the baseline).  Smaller jumps than QCLOCK_JUMP_MIN are ignored:
 * they shift lifetimes of days by at most that much.
 *
 * Errors: a journal that cannot be read or written is logged (warning) and
 * the queue manager goes on with what it has in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "qfile.h"
#include "qmgr.h"

#define QCLOCK_JUMP_MIN 60 /* seconds of disagreement that make a jump */
#define QCLOCK_MAX 64      /* journal entries kept (the oldest go first) */
#define QCLOCK_FILE "clock"

struct jump {
	long long delta;  /* seconds, > 0 (only forward jumps are journalled) */
	long long before; /* wall clock just before the jump */
	long long after;  /* wall clock just after it */
};

static struct jump jumps[QCLOCK_MAX];
static int njumps;
static int loaded;
static long long last_wall, last_boot; /* baseline: the previous pass */

static long long boot_s(void)
{
	struct timespec ts;

#ifdef CLOCK_BOOTTIME
	if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
		return (long long)ts.tv_sec;
#endif
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

time_t qclock_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static int private_dir(void)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, QDIR_PRIVATE);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		log_warning("clock journal: open %s: %s", path, strerror(errno));
	return fd;
}

/* "J DELTA BEFORE AFTER\n": three decimal numbers; 0, or -1 when malformed. */
static int parse_jump(const char *line, struct jump *j)
{
	long long *v[3] = { &j->delta, &j->before, &j->after };
	const char *p = line;
	char *end;
	int i;

	if (p[0] != 'J' || p[1] != ' ')
		return -1;
	p += 2;
	for (i = 0; i < 3; i++) {
		if (*p < '0' || *p > '9')
			return -1;
		errno = 0;
		*v[i] = strtoll(p, &end, 10);
		if (errno || end == p || (*end != ' ' && *end != '\n' && *end != '\0'))
			return -1;
		p = *end == ' ' ? end + 1 : end;
	}
	return *p == '\n' || *p == '\0' ? 0 : -1;
}

static void journal_load(void)
{
	char line[128];
	struct jump j;
	FILE *f;
	int dfd = private_dir(), fd;

	loaded = 1;
	if (dfd < 0)
		return;
	fd = openat(dfd, QCLOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	close(dfd);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warning("clock journal: open: %s", strerror(errno));
		return;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return;
	}
	while (njumps < QCLOCK_MAX && fgets(line, sizeof(line), f)) {
		if (parse_jump(line, &j) == 0 && j.delta > 0 && j.after - j.before == j.delta)
			jumps[njumps++] = j;
		else
			log_warning("clock journal: ignoring a malformed line");
	}
	fclose(f);
}

/* Rewrite the journal (tmp -> fsync -> rename -> fsync of private/). */
static void journal_save(void)
{
	char tmp[64];
	FILE *f;
	int dfd = private_dir(), fd, i, ok;

	if (dfd < 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.%ld", QCLOCK_FILE, (long)getpid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		log_warning("clock journal: create %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		close(dfd);
		return;
	}
	for (i = 0; i < njumps; i++)
		fprintf(f, "J %lld %lld %lld\n", jumps[i].delta, jumps[i].before, jumps[i].after);
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || renameat(dfd, tmp, dfd, QCLOCK_FILE) < 0 || fsync(dfd) < 0) {
		log_warning("clock journal: write: %s", strerror(errno));
		unlinkat(dfd, tmp, 0);
	}
	close(dfd);
}

/* Drop entries no queued message can predate: a message that arrived
 * before an entry has, since then, aged at least (now - after) minus the
 * later jumps, so past the longest lifetime plus all jumps it is gone. */
static void journal_prune(long long now)
{
	long long life = cf.maximal_queue_lifetime > cf.bounce_queue_lifetime ? cf.maximal_queue_lifetime
									      : cf.bounce_queue_lifetime;
	long long total = 0;
	int i, k = 0;

	for (i = 0; i < njumps; i++)
		total += jumps[i].delta;
	for (i = 0; i < njumps; i++)
		if (now - jumps[i].after <= life + total + 86400)
			jumps[k++] = jumps[i];
	njumps = k;
}

void qclock_check(void)
{
	long long wall = (long long)time(NULL), boot = boot_s(), skew;

	if (!loaded) {
		journal_load();
		journal_prune(wall);
	}
	if (last_boot == 0) {
		last_wall = wall;
		last_boot = boot;
		return;
	}
	skew = (wall - last_wall) - (boot - last_boot);
	if (skew > QCLOCK_JUMP_MIN) {
		log_warning("clock jumped forward %lld s; queue lifetimes of the mail queued before "
			    "are extended by as much",
			    skew);
		journal_prune(wall);
		if (njumps == QCLOCK_MAX) {
			memmove(jumps, jumps + 1, sizeof(jumps[0]) * (QCLOCK_MAX - 1));
			njumps--;
		}
		jumps[njumps].delta = skew;
		jumps[njumps].after = wall;
		jumps[njumps].before = wall - skew;
		njumps++;
		journal_save();
	} else if (skew < -QCLOCK_JUMP_MIN) {
		log_warning("clock jumped back %lld s; retry times more than maximal_backoff ahead are "
			    "due now",
			    -skew);
	}
	last_wall = wall;
	last_boot = boot;
}

long long qclock_age(long long arrival, time_t now)
{
	long long age = (long long)now - arrival;
	int i;

	for (i = 0; i < njumps; i++)
		if (arrival < jumps[i].before)
			age -= jumps[i].delta;
	return age;
}

int qclock_retry_due(time_t retry, time_t now)
{
	return retry <= now || (long long)retry - (long long)now > cf.maximal_backoff;
}
