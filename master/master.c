/*
 * master — the supervision loop.
 *
 * Signals are turned into bytes on a self-pipe so the loop handles them at
 * one place.  The loop keeps, per prefork service, at least min_idle idle
 * children (up to process_limit), keeps the queue manager running, reaps
 * every child, and throttles a service whose children die right after
 * starting instead of forking in a loop.  SIGTERM/SIGINT stop every child
 * (SIGTERM, then SIGKILL after a grace period) and exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "master.h"
#include "privs.h"
#include "proto_master.h"
#include "qfile.h"
#include "sock.h"
#include "xalloc.h"

#define MAX_CHILDREN 4096
#define QUICK_EXIT_SECONDS 10
#define THROTTLE_MAX_SECONDS 60
#define STOP_GRACE_MS 5000

static int sigpipe_fds[2] = { -1, -1 };
static struct child *children;
static int nchildren;
static struct service *svcs;
static int nsvc;
static uid_t owner_uid;
static gid_t owner_gid;
static int privileged;
static int stopping; /* children exit because we told them to */

static void on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;

	if (write(sigpipe_fds[1], &c, 1) < 0) {
		/* pipe full: a byte of that kind is pending already */
	}
	errno = saved;
}

static void install_signals(void)
{
	struct sigaction sa;

	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0)
		log_fatal("pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

static void load_config(const struct master_opts *o)
{
	char err[512];
	int i;

	if (conf_load(o->config_path, err, sizeof(err)) < 0)
		log_fatal("%s", err);
	for (i = 0; i < o->noverrides; i++)
		if (conf_override(o->overrides[i], err, sizeof(err)) < 0)
			log_fatal("-o %s: %s", o->overrides[i], err);
	if (conf_finish(err, sizeof(err)) < 0)
		log_fatal("%s: %s", o->config_path, err);
}

/* Root: children run as mail_owner.  Not root: everything runs as us. */
static void decide_identity(const struct master_opts *o)
{
	struct passwd *pw;

	privileged = getuid() == 0;
	if (privileged) {
		if (privs_lookup_user(cf.mail_owner, &owner_uid, &owner_gid) < 0)
			log_fatal("mail_owner %s: no such user (see INSTALL)", cf.mail_owner);
		if (owner_uid == 0 && !o->dev_dir)
			log_fatal("mail_owner %s must not be root", cf.mail_owner);
		if (owner_uid == 0)
			log_warning("development mode started as root: every process runs as root; "
				    "run make run as a normal user, or use a production config, for "
				    "privilege separation");
		return;
	}
	owner_uid = getuid();
	owner_gid = getgid();
	pw = getpwuid(owner_uid);
	log_info("running as non-root user %s: every tern process runs as this user "
		 "(development mode; local delivery only to local_mailbox_base or this user)",
		 pw ? pw->pw_name : "?");
}

static void prepare_queue(void)
{
	static const char *const owned[] = { "", "/" QDIR_TMP, "/" QDIR_INCOMING, "/" QDIR_ACTIVE,
					     "/" QDIR_DEFERRED, "/" QDIR_HOLD, "/" QDIR_CORRUPT,
					     "/" QDIR_PRIVATE, NULL };
	char path[4096];
	int i;

	if (qf_make_dirs(cf.queue_directory) < 0)
		log_fatal("queue_directory %s: %s", cf.queue_directory, strerror(errno));
	/* Virtual mailboxes are written as mail_owner. */
	if (*cf.local_mailbox_base) {
		if (mkdir(cf.local_mailbox_base, 0700) < 0 && errno != EEXIST)
			log_fatal("local_mailbox_base %s: %s", cf.local_mailbox_base, strerror(errno));
		if (privileged && chown(cf.local_mailbox_base, owner_uid, owner_gid) < 0)
			log_fatal("chown %s: %s", cf.local_mailbox_base, strerror(errno));
	}
	if (!privileged)
		return;
	/* The queue belongs to mail_owner; the top directory stays root's. */
	for (i = 1; owned[i]; i++) {
		snprintf(path, sizeof(path), "%s%s", cf.queue_directory, owned[i]);
		if (chown(path, owner_uid, owner_gid) < 0)
			log_fatal("chown %s: %s", path, strerror(errno));
	}
}

static struct child *find_child(pid_t pid)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].pid == pid)
			return &children[i];
	return NULL;
}

static void start_child(struct service *s, const struct master_opts *o, time_t now)
{
	pid_t pid;

	if (nchildren >= MAX_CHILDREN)
		return;
	pid = spawn_child(s, o);
	if (pid < 0) {
		s->throttle_until = now + 1; /* EAGAIN: try again shortly */
		return;
	}
	children[nchildren].pid = pid;
	children[nchildren].svc = s;
	/* A new prefork child counts as idle until it says otherwise, so the
	 * pool is not over-grown while it starts. */
	children[nchildren].idle = s->kind == SVC_PREFORK;
	children[nchildren].started = now;
	nchildren++;
	s->nproc++;
	if (s->kind == SVC_PREFORK)
		s->nidle++;
}

static void maintain(const struct master_opts *o, time_t now)
{
	int i;

	for (i = 0; i < nsvc; i++) {
		struct service *s = &svcs[i];

		if (s->throttle_until > now)
			continue;
		while (s->nproc < s->process_limit &&
		       (s->kind == SVC_SINGLE ? s->nproc < 1 : s->nidle < s->min_idle)) {
			start_child(s, o, now);
			if (s->throttle_until > now)
				break;
		}
		if (s->kind == SVC_PREFORK && s->nidle == 0 && s->nproc >= s->process_limit) {
			if (!s->all_busy_warned)
				log_warning("service \"%s\" (%s): all %d processes busy; new connections wait "
					    "in the listen queue",
					    s->name, s->listen, s->nproc);
			s->all_busy_warned = 1;
		} else if (s->nidle > 0) {
			s->all_busy_warned = 0;
		}
	}
}

static void child_exited(pid_t pid, int status, time_t now)
{
	struct child *c = find_child(pid);
	struct service *s;
	int abnormal;

	if (!c)
		return;
	s = c->svc;
	s->nproc--;
	if (c->idle)
		s->nidle--;
	abnormal = !stopping && (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0));
	if (abnormal) {
		if (WIFSIGNALED(status))
			log_warning("process %s pid %d killed by signal %d", s->program, (int)pid, WTERMSIG(status));
		else
			log_warning("process %s pid %d exit status %d", s->program, (int)pid, WEXITSTATUS(status));
		if (now - c->started < QUICK_EXIT_SECONDS) {
			int delay = 1 << (s->fast_exits < 6 ? s->fast_exits : 6);

			if (delay > THROTTLE_MAX_SECONDS)
				delay = THROTTLE_MAX_SECONDS;
			s->fast_exits++;
			s->throttle_until = now + delay;
			log_warning("service %s: process died right after start; throttling restarts for %d s",
				    s->name, delay);
		}
	} else {
		s->fast_exits = 0;
	}
	*c = children[--nchildren];
}

static void reap(time_t now)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		child_exited(pid, status, now);
}

static void read_status(struct service *s)
{
	struct master_status st;
	ssize_t n;

	while ((n = read(s->status_rd, &st, sizeof(st))) == (ssize_t)sizeof(st)) {
		struct child *c = find_child(st.pid);
		int idle = st.state == MASTER_IDLE;

		if (!c || c->svc != s || c->idle == idle)
			continue;
		c->idle = idle;
		s->nidle += idle ? 1 : -1;
	}
}

static void stop_all(void)
{
	struct timespec start, now;
	int i;

	stopping = 1;
	for (i = 0; i < nchildren; i++)
		kill(children[i].pid, SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (nchildren > 0) {
		long ms;

		reap(time(NULL));
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms > STOP_GRACE_MS) {
			for (i = 0; i < nchildren; i++) {
				log_warning("process %s pid %d did not stop; killing it", children[i].svc->program,
					    (int)children[i].pid);
				kill(children[i].pid, SIGKILL);
			}
			while (nchildren > 0 && waitpid(-1, NULL, 0) > 0)
				reap(time(NULL));
			break;
		}
		poll(NULL, 0, 20);
	}
}

/* Handle pending signal bytes; returns 1 when the master must stop. */
static int handle_signals(time_t now)
{
	unsigned char c;
	int stop = 0;

	while (read(sigpipe_fds[0], &c, 1) == 1) {
		if (c == SIGCHLD)
			reap(now);
		else if (c == SIGTERM || c == SIGINT)
			stop = 1;
		else if (c == SIGHUP)
			log_info("SIGHUP: configuration reload is not supported yet; restart tern to apply changes");
	}
	return stop;
}

static int next_timeout(time_t now)
{
	time_t soonest = 0;
	int i;

	for (i = 0; i < nsvc; i++)
		if (svcs[i].throttle_until > now && (!soonest || svcs[i].throttle_until < soonest))
			soonest = svcs[i].throttle_until;
	return soonest ? (int)(soonest - now) * 1000 : 60000;
}

int master_run(const struct master_opts *o)
{
	struct pollfd pfd[1 + 64];
	int i, n;

	log_open("tern/master", o->foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG);
	load_config(o);
	log_open("tern/master", o->foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG);
	log_set_verbose(o->verbose);
	install_signals();
	decide_identity(o);
	prepare_queue();
	services_setup(&svcs, &nsvc, owner_uid, owner_gid);
	children = xcalloc(MAX_CHILDREN, sizeof(*children));
	log_info("tern starting: queue %s, smtp on %s", cf.queue_directory, cf.smtpd_listen);

	for (;;) {
		time_t now = time(NULL);

		maintain(o, now);
		n = 0;
		pfd[n].fd = sigpipe_fds[0];
		pfd[n++].events = POLLIN;
		for (i = 0; i < nsvc && n < (int)(sizeof(pfd) / sizeof(pfd[0])); i++) {
			if (svcs[i].status_rd < 0)
				continue;
			pfd[n].fd = svcs[i].status_rd;
			pfd[n++].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)n, next_timeout(now)) < 0 && errno != EINTR)
			log_fatal("poll: %s", strerror(errno));
		now = time(NULL);
		/* Reap before reading status, and status before forking, so
		 * idle counts are right when maintain() looks at them. */
		if (handle_signals(now))
			break;
		for (i = 0; i < nsvc; i++)
			if (svcs[i].status_rd >= 0)
				read_status(&svcs[i]);
	}
	log_info("stopping");
	stop_all();
	log_info("stopped");
	return 0;
}
