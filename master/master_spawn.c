/*
 * master_spawn — start one child of a service.
 *
 * The child gets exactly the descriptors of proto_master.h (0-2, the
 * listener as 3, the status pipe as 4, for smtpd the scoreboard as 5 with
 * its slot number in the environment) and nothing else, dies with the
 * master (PR_SET_PDEATHSIG) and execs its program from daemon_directory
 * with the master's own -c/-o/-f/-v options plus the service's own:
 * -o max_use=N -o max_idle=T, -u USER (who to become) and -r (chroot into
 * the queue directory).  The program drops root itself (daemon_init), so
 * daemon_directory need only be readable by root.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "master.h"
#include "proto_master.h"
#include "scoreboard.h"

#define MAX_ARGS 512

static void child_fds(const struct service *s, const struct master_opts *o, int slot)
{
	int null = open("/dev/null", O_RDWR);

	if (null < 0)
		_exit(71);
	/* Move the service's fds well out of the way before placing them at 3 and 4. */
	int lfd = fcntl(s->listen_fd, F_DUPFD, 10);
	int sfd = s->status_wr >= 0 ? fcntl(s->status_wr, F_DUPFD, 10) : -1;
	int bfd = slot >= 0 ? fcntl(sb_fd(s->sb), F_DUPFD, 10) : -1;
	char num[16];

	if (lfd < 0 || (s->status_wr >= 0 && sfd < 0) || (slot >= 0 && bfd < 0))
		_exit(71);
	if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || (!o->foreground && dup2(null, 2) < 0))
		_exit(71);
	if (dup2(lfd, MASTER_LISTEN_FD) < 0)
		_exit(71);
	if (sfd >= 0 ? dup2(sfd, MASTER_STATUS_FD) < 0 : dup2(null, MASTER_STATUS_FD) < 0)
		_exit(71);
	if (bfd >= 0) {
		snprintf(num, sizeof(num), "%d", slot);
		if (dup2(bfd, MASTER_SCOREBOARD_FD) < 0 || setenv(MASTER_SCOREBOARD_ENV, num, 1) < 0)
			_exit(71);
		close_range(MASTER_SCOREBOARD_FD + 1, ~0U, 0);
		return;
	}
	/* Not one inherited from whoever started the master, either. */
	unsetenv(MASTER_SCOREBOARD_ENV);
	close_range(MASTER_STATUS_FD + 1, ~0U, 0);
}

static void child_exec(const struct service *s, const struct master_opts *o)
{
	char path[4096], arg0[64], use[64], idle[64];
	char *argv[MAX_ARGS];
	int n = 0, i;

	if (snprintf(path, sizeof(path), "%s/%s", cf.daemon_directory, s->program) >= (int)sizeof(path))
		_exit(71);
	snprintf(arg0, sizeof(arg0), "%s/%s", cf.syslog_name, s->program);
	argv[n++] = arg0;
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)o->config_path;
	for (i = 0; i < o->noverrides && n < MAX_ARGS - 16; i++) {
		argv[n++] = (char *)"-o";
		argv[n++] = o->overrides[i];
	}
	/* Per-service settings ride as options the daemon understands. */
	snprintf(use, sizeof(use), "max_use=%lld", s->max_use);
	snprintf(idle, sizeof(idle), "max_idle=%llds", s->max_idle);
	argv[n++] = (char *)"-o";
	argv[n++] = use;
	argv[n++] = (char *)"-o";
	argv[n++] = idle;
	argv[n++] = (char *)"-u";
	argv[n++] = (char *)s->user;
	if (s->chroot)
		argv[n++] = (char *)"-r";
	if (o->foreground)
		argv[n++] = (char *)"-f";
	if (o->verbose)
		argv[n++] = (char *)"-v";
	argv[n] = NULL;
	execv(path, argv);
	log_warning("exec %s: %s", path, strerror(errno));
	_exit(71);
}

pid_t spawn_child(struct service *s, const struct master_opts *o, int slot)
{
	sigset_t all, old;
	pid_t parent = getpid(), pid;

	/* Block signals across fork so the child starts with default
	 * handlers and cannot run the master's. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid != 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (pid < 0)
			log_warning("service %s: fork: %s", s->name, strerror(errno));
		return pid;
	}
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		_exit(71);
	if (getppid() != parent)
		_exit(0); /* the master died before prctl took effect */
	child_fds(s, o, slot);
	child_exec(s, o);
	return -1;
}
