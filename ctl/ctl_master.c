/*
 * ctl_master — ternctl start | stop | reload | status, and the queue tree
 * check behind `ternctl check`.
 *
 * The running master is found through queue_directory/master.lock: the
 * master holds an exclusive flock on it for its whole life and writes its
 * pid there.  A lock we can take ourselves therefore means no master runs,
 * whatever pid a stale file still holds — no pid file can lie.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "ctl_master.h"
#include "privs.h"
#include "qfile.h"
#include "strutil.h"

#define WAIT_MS 15000

/* The running master's pid, 0 when none runs, -1 when it cannot be told. */
static long master_pid(void)
{
	char path[4096], text[32];
	long pid = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/master.lock", cf.queue_directory);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd); /* nobody holds it: no master */
		return 0;
	}
	n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = 0;
	text[strcspn(text, "\n")] = 0;
	{
		unsigned long long v;

		if (parse_ull(text, 1U << 30, &v) < 0 || v < 2)
			return -1;
		pid = (long)v;
	}
	return pid;
}

/* Wait until running() == want; 0 when reached within WAIT_MS. */
static int wait_state(int want)
{
	int waited;

	for (waited = 0; waited < WAIT_MS; waited += 50) {
		long pid = master_pid();

		if ((want && pid > 0) || (!want && pid == 0))
			return 0;
		poll(NULL, 0, 50);
	}
	return -1;
}

/* BUILD/sbin/ternctl -> BUILD/sbin/tern-master: the master beside us. */
static int master_path(char *out, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return -1;
	exe[n] = 0;
	return snprintf(out, size, "%s/tern-master", dirname(exe)) < (int)size ? 0 : -1;
}

static int start(const char *config, char **overrides, int noverrides)
{
	char path[PATH_MAX + 16];
	char *argv[2 * 64 + 4];
	int n = 0, i;
	pid_t pid;

	if (master_pid() > 0) {
		fprintf(stderr, "ternctl: tern is already running (pid %ld)\n", master_pid());
		return 1;
	}
	if (master_path(path, sizeof(path)) < 0) {
		fprintf(stderr, "ternctl: cannot find tern-master\n");
		return 1;
	}
	argv[n++] = path;
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)config;
	for (i = 0; i < noverrides && i < 64; i++) {
		argv[n++] = (char *)"-o";
		argv[n++] = overrides[i];
	}
	argv[n] = NULL;
	pid = fork();
	if (pid < 0) {
		perror("ternctl: fork");
		return 1;
	}
	if (pid == 0) {
		/* The master in the background, in its own session, logging to
		 * syslog; its own checks decide whether it runs. */
		int null = open("/dev/null", O_RDWR);

		if (null < 0 || setsid() < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(71);
		execv(path, argv);
		_exit(71);
	}
	if (wait_state(1) < 0) {
		fprintf(stderr, "ternctl: tern-master did not start (see the mail log)\n");
		return 1;
	}
	printf("tern started (pid %ld)\n", master_pid());
	return 0;
}

static int signal_master(int sig, const char *what)
{
	long pid = master_pid();

	if (pid <= 0) {
		fprintf(stderr, "ternctl: tern is not running%s\n", pid < 0 ? " (unreadable master.lock)" : "");
		return 1;
	}
	if (kill((pid_t)pid, sig) < 0) {
		fprintf(stderr, "ternctl: %s pid %ld: %s\n", what, pid, strerror(errno));
		return 1;
	}
	return 0;
}

int ctl_master(const char *cmd, const char *config, char **overrides, int noverrides)
{
	long pid;

	if (strcmp(cmd, "start") == 0)
		return start(config, overrides, noverrides);
	if (strcmp(cmd, "reload") == 0) {
		if (signal_master(SIGHUP, "reload") != 0)
			return 1;
		printf("tern reloading\n");
		return 0;
	}
	if (strcmp(cmd, "stop") == 0) {
		if (signal_master(SIGTERM, "stop") != 0)
			return 1;
		if (wait_state(0) < 0) {
			fprintf(stderr, "ternctl: tern-master still running after %d s\n", WAIT_MS / 1000);
			return 1;
		}
		printf("tern stopped\n");
		return 0;
	}
	/* status */
	pid = master_pid();
	if (pid > 0) {
		printf("tern is running (pid %ld)\n", pid);
		return 0;
	}
	printf("tern is not running\n");
	return pid < 0 ? 4 : 3; /* LSB: 3 = not running, 4 = unknown */
}

static int check_one(const char *path, uid_t uid, gid_t gid, mode_t mode, int must_exist)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (!must_exist && errno == ENOENT)
			return 0;
		fprintf(stderr, "ternctl: queue: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "ternctl: queue: %s: not a directory\n", path);
		return 1;
	}
	if (st.st_uid != uid) {
		fprintf(stderr, "ternctl: queue: %s: owner uid %ld, expected %ld\n", path, (long)st.st_uid, (long)uid);
		return 1;
	}
	if (gid != (gid_t)-1 && st.st_gid != gid) {
		fprintf(stderr, "ternctl: queue: %s: group gid %ld, expected %ld\n", path, (long)st.st_gid, (long)gid);
		return 1;
	}
	if ((st.st_mode & 07777) != mode) {
		fprintf(stderr, "ternctl: queue: %s: mode %04o, expected %04o\n", path, st.st_mode & 07777, mode);
		return 1;
	}
	return 0;
}

int ctl_check_queue(void)
{
	static const char *const owned[] = { QDIR_TMP,      QDIR_INCOMING, QDIR_ACTIVE, QDIR_DEFERRED,
					     QDIR_HOLD,     QDIR_CORRUPT,  QDIR_PRIVATE, QDIR_RECYCLE, NULL };
	char path[4096];
	uid_t uid, top_uid;
	gid_t gid;
	struct stat st;
	int bad = 0, i;

	if (stat(cf.queue_directory, &st) < 0 && errno == ENOENT) {
		printf("ternctl: queue %s does not exist yet (tern-master creates it)\n", cf.queue_directory);
		return 0;
	}
	if (getuid() == 0) {
		if (privs_lookup_user(cf.mail_owner, &uid, &gid) < 0) {
			fprintf(stderr, "ternctl: mail_owner %s: no such user\n", cf.mail_owner);
			return 1;
		}
		top_uid = 0;
	} else {
		uid = top_uid = getuid(); /* development: everything is ours */
	}
	bad |= check_one(cf.queue_directory, top_uid, (gid_t)-1, 0755, 1);
	for (i = 0; owned[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, owned[i]);
		bad |= check_one(path, uid, (gid_t)-1, 0700, 0);
	}
	/* Local submission: the setgid postdrop's group may create in
	 * maildrop/ and reach public/pickup; nobody else may enter either. */
	{
		struct group *gr = getuid() == 0 ? getgrnam(cf.setgid_group) : NULL;
		gid_t sgid = gr ? gr->gr_gid : (gid_t)-1;

		snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, QDIR_MAILDROP);
		bad |= check_one(path, uid, sgid, 01730, 0);
		snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, QDIR_PUBLIC);
		bad |= check_one(path, uid, sgid, 0710, 0);
	}
	return bad;
}
