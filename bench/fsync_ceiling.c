/* fsync_ceiling.c — the disk's durable-commit ceiling, the way a queue commits
 * one message: write 4 KiB to tmp/NAME, fsync it, rename it to new/NAME,
 * fsync the directory new/.  W writer threads (each its own files, the same two
 * directories) run for at most S seconds or N commits each, whichever first.
 *
 *   fsync_ceiling DIR WRITERS [SECONDS [COUNT]]
 *
 * Prints "ceiling writers=W commits=C seconds=T rate=R" (commits per second).
 * DIR must exist; the program makes DIR/tmp and DIR/new and leaves its files
 * there: removing them would free thousands of inodes, which slows every
 * create on the file system for a while after (the caller removes DIR at the
 * very end).  Part of bench/ (built by bench/run.sh), not of tern.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *base;
static double limit_s = 5.0;
static long limit_n = 5000;
static char block[4096];

struct writer {
	pthread_t th;
	int id;
	long done;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "fsync_ceiling: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *run(void *arg)
{
	struct writer *w = arg;
	char tmp[4096], dst[4096], dir[4096];
	snprintf(dir, sizeof dir, "%s/new", base);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		die(dir);
	double end = now() + limit_s;
	for (long i = 0; i < limit_n && now() < end; i++) {
		snprintf(tmp, sizeof tmp, "%s/tmp/w%d.%ld", base, w->id, i);
		snprintf(dst, sizeof dst, "%s/new/w%d.%ld", base, w->id, i);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			die(tmp);
		if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
			die("write");
		if (fsync(fd) < 0)
			die("fsync");
		close(fd);
		if (rename(tmp, dst) < 0)
			die("rename");
		if (fsync(dfd) < 0)
			die("fsync dir");
		w->done++;
	}
	close(dfd);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fsync_ceiling DIR WRITERS [SECONDS [COUNT]]\n");
		return 2;
	}
	base = argv[1];
	int nw = atoi(argv[2]);
	if (nw < 1 || nw > 256)
		nw = 1;
	if (argc > 3)
		limit_s = atof(argv[3]);
	if (argc > 4)
		limit_n = atol(argv[4]);
	memset(block, 'x', sizeof block);
	char p[4096];
	snprintf(p, sizeof p, "%s/tmp", base);
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		die(p);
	snprintf(p, sizeof p, "%s/new", base);
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		die(p);
	struct writer *w = calloc(nw, sizeof *w);
	double t0 = now();
	for (int i = 0; i < nw; i++) {
		w[i].id = i;
		if (pthread_create(&w[i].th, NULL, run, &w[i]) != 0)
			die("pthread_create");
	}
	long total = 0;
	for (int i = 0; i < nw; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].done;
	}
	double t = now() - t0;
	printf("ceiling writers=%d commits=%ld seconds=%.3f rate=%.0f\n", nw, total, t, total / t);
	return 0;
}
