/*
 * master — the supervision loop.
 *
 * Signals are turned into bytes on a self-pipe so the loop handles them at
 * one place.  The loop keeps, per prefork service, at least min_idle idle
 * children (up to process_limit), keeps the queue manager running, reaps
 * every child, and throttles a service whose children die right after
 * starting instead of forking in a loop.  Each smtpd service also has a
 * scoreboard (common/scoreboard.h): every child gets a slot of its own, and
 * the slot of every child reaped is cleared, so a crashed session never
 * counts against its client's connection cap.  SIGTERM/SIGINT stop every child
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
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "dirsync.h"
#include "log.h"
#include "master.h"
#include "privs.h"
#include "proto_master.h"
#include "qfile.h"
#include "scoreboard.h"
#include "sock.h"
#include "xalloc.h"

#define MAX_CHILDREN 4096
#define QUICK_EXIT_SECONDS 10
#define THROTTLE_MAX_SECONDS 60
#define STOP_GRACE_MS 5000

static int sigpipe_fds[2] = { -1, -1 };
static struct child *children;
static int nchildren;
static struct service svcs[MAX_SERVICES];
static int generation;   /* bumped by every reload */
static int lock_fd = -1; /* queue_directory/master.lock, held while we run */
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

/* Load the file and the -o overrides; 0 or -1 with the reason in err. */
static int load_config_checked(const struct master_opts *o, char *err, size_t errsize)
{
	char why[512];
	int i;

	if (conf_load(o->config_path, err, errsize) < 0)
		return -1;
	for (i = 0; i < o->noverrides; i++) {
		if (conf_override(o->overrides[i], why, sizeof(why)) < 0) {
			snprintf(err, errsize, "-o %s: %s", o->overrides[i], why);
			return -1;
		}
	}
	if (conf_finish(why, sizeof(why)) < 0) {
		snprintf(err, errsize, "%s", why);
		return -1;
	}
	return 0;
}

static void load_config(const struct master_opts *o)
{
	char err[1024];

	if (load_config_checked(o, err, sizeof(err)) < 0)
		log_fatal("%s", err);
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
					     "/" QDIR_PRIVATE, "/" QDIR_MAILDROP, "/" QDIR_PUBLIC,
					     "/" QDIR_RECYCLE, NULL };
	static const char *const submit_dirs[] = { QDIR_MAILDROP, QDIR_PUBLIC, NULL };
	char path[4096];
	int i;

	if (qf_make_dirs(cf.queue_directory) < 0)
		log_fatal("queue_directory %s: %s", cf.queue_directory, strerror(errno));
	/* The group-commit counters of a previous run mean nothing now. */
	snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, QDIR_PRIVATE);
	int pfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0 || dirsync_reset(pfd, QF_SYNC_STATE) < 0)
		log_fatal("%s/%s: %s", path, QF_SYNC_STATE, strerror(errno));
	close(pfd);
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
	/* Local submission (issue 8): the setgid postdrop may create files in
	 * maildrop/ (1730) and reach public/pickup (public/ 0710). */
	if (submit_group_gid((gid_t)-1) == (gid_t)-1)
		log_warning("setgid_group %s: no such group; only root and %s can submit with sendmail "
			    "(see INSTALL)", cf.setgid_group, cf.mail_owner);
	for (i = 0; submit_dirs[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, submit_dirs[i]);
		if (chown(path, owner_uid, submit_group_gid(owner_gid)) < 0 ||
		    chmod(path, i == 0 ? 01730 : 0710) < 0)
			log_fatal("chown/chmod %s: %s", path, strerror(errno));
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

/* Seconds on the monotonic clock: throttling and child ages must not
 * stretch or shrink when the wall clock is stepped. */
static time_t mono_now(void)
{
	return (time_t)(clock_ms() / 1000);
}

static void start_child(struct service *s, const struct master_opts *o, time_t now)
{
	int slot = -1;
	pid_t pid;

	if (nchildren >= MAX_CHILDREN)
		return;
	/* Cannot run out: a scoreboard has MAX_CHILDREN slots. */
	if (s->sb && (slot = sb_slot_take(s->sb)) < 0)
		log_warning("service %s: no free scoreboard slot; this child is not counted", s->name);
	pid = spawn_child(s, o, slot);
	if (pid < 0) {
		if (slot >= 0)
			sb_slot_release(s->sb, slot);
		s->throttle_until = now + 1; /* EAGAIN: try again shortly */
		return;
	}
	children[nchildren].pid = pid;
	children[nchildren].svc = s;
	children[nchildren].generation = generation;
	/* A new prefork child counts as idle until it says otherwise, so the
	 * pool is not over-grown while it starts. */
	children[nchildren].idle = s->kind == SVC_PREFORK;
	children[nchildren].started = now;
	children[nchildren].slot = slot;
	nchildren++;
	s->nproc++;
	if (s->kind == SVC_PREFORK)
		s->nidle++;
}

static void maintain(const struct master_opts *o, time_t now)
{
	int i;

	for (i = 0; i < MAX_SERVICES; i++) {
		struct service *s = &svcs[i];

		if (!s->in_use || s->retired || s->throttle_until > now)
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
	if (c->idle && c->generation == generation)
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
	/* However it ended (kill -9 included), its client no longer counts. */
	if (c->slot >= 0 && s->sb)
		sb_slot_release(s->sb, c->slot);
	*c = children[--nchildren];
	if (s->retired && s->nproc == 0) {
		service_close(s);
		s->in_use = 0;
	}
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
	/* Many reports in one read: under load the pipe holds several per
	 * wake-up (each record is written whole, PIPE_BUF being larger). */
	struct master_status st[64];
	ssize_t n;
	size_t i;

	do {
		n = read(s->status_rd, st, sizeof(st));
		for (i = 0; n > 0 && i < (size_t)n / sizeof(st[0]); i++) {
			struct child *c = find_child(st[i].pid);
			int idle = st[i].state == MASTER_IDLE;

			if (!c || c->svc != s || c->idle == idle)
				continue;
			c->idle = idle;
			if (c->generation == generation)
				s->nidle += idle ? 1 : -1;
		}
	} while (n == (ssize_t)sizeof(st));
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

		reap(mono_now());
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms > STOP_GRACE_MS) {
			for (i = 0; i < nchildren; i++) {
				log_warning("process %s pid %d did not stop; killing it", children[i].svc->program,
					    (int)children[i].pid);
				kill(children[i].pid, SIGKILL);
			}
			while (nchildren > 0 && waitpid(-1, NULL, 0) > 0)
				reap(mono_now());
			break;
		}
		poll(NULL, 0, 20);
	}
}

enum master_event { EV_NONE, EV_STOP, EV_RELOAD };

/* Handle pending signal bytes. */
static enum master_event handle_signals(time_t now)
{
	enum master_event ev = EV_NONE;
	unsigned char c;

	while (read(sigpipe_fds[0], &c, 1) == 1) {
		if (c == SIGCHLD)
			reap(now);
		else if (c == SIGTERM || c == SIGINT)
			ev = EV_STOP;
		else if (c == SIGHUP && ev == EV_NONE)
			ev = EV_RELOAD;
	}
	return ev;
}

static int next_timeout(time_t now)
{
	time_t soonest = 0;
	int i;

	for (i = 0; i < MAX_SERVICES; i++)
		if (svcs[i].in_use && svcs[i].throttle_until > now &&
		    (!soonest || svcs[i].throttle_until < soonest))
			soonest = svcs[i].throttle_until;
	return soonest ? (int)(soonest - now) * 1000 : 60000;
}

/* One master per queue: an exclusive lock on queue_directory/master.lock,
 * which also holds our pid for ternctl. */
static void take_lock(void)
{
	char path[4096], pid[32];
	int n;

	snprintf(path, sizeof(path), "%s/master.lock", cf.queue_directory);
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (lock_fd < 0)
		log_fatal("open %s: %s", path, strerror(errno));
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		n = (int)pread(lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		log_fatal("another tern-master (pid %s) is running on %s", *pid ? pid : "?", cf.queue_directory);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(lock_fd, 0) < 0 || pwrite(lock_fd, pid, (size_t)n, 0) != n)
		log_fatal("write %s: %s", path, strerror(errno));
}

/* Bind the sockets of a new table entry; fatal at start, logged on reload. */
static int bind_new(struct service *s, int fatal)
{
	if (service_bind(s, owner_uid, owner_gid) == 0)
		return 0;
	if (fatal)
		log_fatal("service %s: %s %s: %s", s->name, s->type, s->listen, strerror(errno));
	log_warning("service %s: %s %s: %s; service not started", s->name, s->type, s->listen, strerror(errno));
	service_close(s);
	return -1;
}

/* smtpd services get a scoreboard for the per-client connection cap,
 * sized for every child the master may ever run (MAX_CHILDREN), so a reload
 * that raises process_limit needs no new one.  Without it (no memory for a
 * memfd) the service runs, uncapped, and says so. */
static void scoreboard_for(struct service *s)
{
	char err[256];

	if (s->sb || s->kind != SVC_PREFORK || strcmp(s->program, "smtpd") != 0)
		return;
	s->sb = sb_create(MAX_CHILDREN, err, sizeof(err));
	if (!s->sb)
		log_warning("service %s: %s; smtpd_client_connection_count_limit is not enforced", s->name, err);
}

static struct service *free_slot(void)
{
	int i;

	for (i = 0; i < MAX_SERVICES; i++)
		if (!svcs[i].in_use)
			return &svcs[i];
	return NULL;
}

/*
 * Install a freshly parsed table.  A service whose socket is unchanged keeps
 * its socket, status pipe and children (they retire as the generation
 * changes); new ones are bound; vanished ones stop accepting at once and
 * their slot is freed when their last child exits.
 */
static void install_table(struct service *t, int n, int fatal)
{
	int i, j, keep[MAX_SERVICES] = { 0 };

	for (j = 0; j < n; j++) {
		struct service *old = NULL, *dst;

		for (i = 0; i < MAX_SERVICES && !old; i++)
			if (svcs[i].in_use && !svcs[i].retired && !keep[i] && service_same_socket(&svcs[i], &t[j]))
				old = &svcs[i];
		if (old) {
			/* copy the configuration, keep the run-time state */
			keep[old - svcs] = 1;
			t[j].listen_fd = old->listen_fd;
			t[j].status_rd = old->status_rd;
			t[j].status_wr = old->status_wr;
			t[j].nproc = old->nproc;
			t[j].fast_exits = old->fast_exits;
			t[j].throttle_until = old->throttle_until;
			t[j].sb = old->sb; /* the old generation's sessions keep counting */
			t[j].in_use = 1;
			scoreboard_for(&t[j]);
			*old = t[j];
			continue;
		}
		dst = free_slot();
		if (!dst) {
			log_warning("service %s: no free service slot", t[j].name);
			continue;
		}
		t[j].in_use = 1;
		if (bind_new(&t[j], fatal) < 0)
			continue;
		scoreboard_for(&t[j]);
		*dst = t[j];
		keep[dst - svcs] = 1;
	}
	for (i = 0; i < MAX_SERVICES; i++) {
		if (!svcs[i].in_use || keep[i] || svcs[i].retired)
			continue;
		log_info("service %s (%s) removed from the configuration", svcs[i].name, svcs[i].listen);
		svcs[i].retired = 1;
		if (svcs[i].listen_fd >= 0) {
			close(svcs[i].listen_fd); /* the children keep their copy until they go */
			svcs[i].listen_fd = -1;
		}
		if (svcs[i].nproc == 0) {
			service_close(&svcs[i]);
			svcs[i].in_use = 0;
		}
	}
}

/* Write the running configuration to a string, to fall back on. */
static char *config_snapshot(void)
{
	int fd = memfd_create("tern-conf", MFD_CLOEXEC);
	char *text = NULL;
	off_t len;

	if (fd < 0)
		return NULL;
	conf_dump(fd);
	len = lseek(fd, 0, SEEK_END);
	if (len >= 0 && len < (1 << 24)) {
		text = xmalloc((size_t)len + 1);
		if (pread(fd, text, (size_t)len, 0) != (ssize_t)len) {
			free(text);
			text = NULL;
		} else {
			text[len] = 0;
		}
	}
	close(fd);
	return text;
}

/*
 * SIGHUP: read the configuration again and replace every child gracefully.
 * Children get SIGHUP, which means "finish what you are doing, then exit":
 * idle ones go at once, busy ones after their session or delivery, so no
 * connection is cut and nothing accepted is lost.  The new generation is
 * started from the new configuration as the old one drains.  A broken file
 * changes nothing: the error is logged and the old settings stay.
 */
static void reload(const struct master_opts *o)
{
	static struct service t[MAX_SERVICES];
	char err[512], err2[512];
	char *old = config_snapshot();
	int n = -1, i;

	if (load_config_checked(o, err, sizeof(err)) == 0)
		n = services_parse(t, err, sizeof(err));
	if (n < 0) {
		log_warning("reload failed, keeping the running configuration: %s", err);
		if (old && (conf_load_string(old, o->config_path, err2, sizeof(err2)) < 0 ||
			    conf_finish(err2, sizeof(err2)) < 0))
			log_fatal("cannot restore the running configuration: %s", err2);
		free(old);
		return;
	}
	free(old);
	prepare_queue();
	install_table(t, n, 0);
	generation++;
	for (i = 0; i < MAX_SERVICES; i++)
		svcs[i].nidle = 0;
	for (i = 0; i < nchildren; i++)
		kill(children[i].pid, SIGHUP);
	log_info("reloaded %s: %d service(s); old processes finish their work and exit", o->config_path, n);
}

int master_run(const struct master_opts *o)
{
	static struct service t[MAX_SERVICES];
	struct pollfd pfd[1 + MAX_SERVICES];
	char err[512];
	int i, n;

	log_open("tern/master", o->foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG);
	load_config(o);
	log_open("tern/master", o->foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG);
	log_set_verbose(o->verbose);
	install_signals();
	decide_identity(o);
	n = services_parse(t, err, sizeof(err));
	if (n < 0)
		log_fatal("%s", err);
	prepare_queue();
	take_lock();
	install_table(t, n, 1);
	children = xcalloc(MAX_CHILDREN, sizeof(*children));
	log_info("tern starting: queue %s, %d service(s)", cf.queue_directory, n);

	for (;;) {
		time_t now = mono_now();
		enum master_event ev;

		maintain(o, now);
		n = 0;
		pfd[n].fd = sigpipe_fds[0];
		pfd[n++].events = POLLIN;
		for (i = 0; i < MAX_SERVICES; i++) {
			if (!svcs[i].in_use || svcs[i].status_rd < 0)
				continue;
			pfd[n].fd = svcs[i].status_rd;
			pfd[n++].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)n, next_timeout(now)) < 0 && errno != EINTR)
			log_fatal("poll: %s", strerror(errno));
		now = mono_now();
		/* Reap before reading status, and status before forking, so
		 * idle counts are right when maintain() looks at them. */
		ev = handle_signals(now);
		if (ev == EV_STOP)
			break;
		for (i = 0; i < MAX_SERVICES; i++)
			if (svcs[i].in_use && svcs[i].status_rd >= 0)
				read_status(&svcs[i]);
		if (ev == EV_RELOAD)
			reload(o);
	}
	log_info("stopping");
	stop_all();
	log_info("stopped");
	return 0;
}
