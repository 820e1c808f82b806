/*
 * server — argument handling for every daemon and the prefork accept loop
 * (see server.h and proto_master.h).
 */
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "privs.h"
#include "proto_master.h"
#include "selfpid.h"
#include "server.h"
#include "sock.h"
#include "xalloc.h"

struct daemon_args daemon_args;
volatile int server_terminating;

/* The master's PR_SET_PDEATHSIG, noted at start: the kernel clears it when
 * the effective uid or gid changes, so it is armed again after the drop. */
static int pdeath_sig;
static pid_t pdeath_parent;

static void rearm_parent_death_signal(void)
{
	if (pdeath_sig == 0)
		return;
	if (prctl(PR_SET_PDEATHSIG, pdeath_sig) < 0)
		log_fatal("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	if (getppid() != pdeath_parent)
		exit(0); /* the master died while the signal was not armed */
}

static void on_term(int sig)
{
	(void)sig;
	server_terminating = 1;
}

static void usage(const char *name)
{
	fprintf(stderr, "usage: %s [-c config] [-o key=value]... [-f] [-v] [-u user] [-r]\n", name);
	exit(64);
}

/* Load the configuration named by -c plus the -o overrides; fatal on error. */
static void load_config(int argc, char **argv)
{
	char err[512];
	int i, c;

	optind = 1;
	while ((c = getopt(argc, argv, "c:o:fvu:r")) != -1) {
		switch (c) {
		case 'c': daemon_args.config_path = optarg; break;
		case 'o': break; /* applied after the file */
		case 'f': daemon_args.foreground = 1; break;
		case 'v': daemon_args.verbose = 1; break;
		case 'u': daemon_args.user = optarg; break;
		case 'r': daemon_args.chroot = 1; break;
		default: usage(daemon_args.name);
		}
	}
	if (optind != argc)
		usage(daemon_args.name);
	if (!daemon_args.config_path)
		daemon_args.config_path = TERN_SYSCONFDIR "/tern.conf";
	if (conf_load(daemon_args.config_path, err, sizeof(err)) < 0)
		log_fatal("%s", err);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			if (conf_override(argv[++i], err, sizeof(err)) < 0)
				log_fatal("-o %s: %s", argv[i], err);
		}
	}
	if (conf_finish(err, sizeof(err)) < 0)
		log_fatal("%s: %s", daemon_args.config_path, err);
}

/* Root starts every daemon (the master cannot exec from a directory only
 * root may read after dropping); each one gives up root here, before it
 * touches any input. */
static void drop_to_mail_owner(void)
{
	const char *user = daemon_args.user ? daemon_args.user : cf.mail_owner;
	uid_t uid;
	gid_t gid;

	if (getuid() != 0 && geteuid() != 0)
		return; /* development mode: nothing to give up */
	if (privs_lookup_user(user, &uid, &gid) < 0)
		log_fatal("user %s: no such user", user);
	if (daemon_args.chroot) {
		privs_drop(uid, gid, cf.queue_directory, NULL);
		/* Queue paths are built as "%s/tmp": inside the chroot the
		 * queue is the root. */
		free(cf.queue_directory);
		cf.queue_directory = xstrdup("");
		rearm_parent_death_signal();
		return;
	}
	privs_drop(uid, gid, NULL, NULL);
	rearm_parent_death_signal();
}

static void daemon_setup(int argc, char **argv, const char *name)
{
	char ident[128];
	struct sigaction sa;

	daemon_args.name = name;
	if (prctl(PR_GET_PDEATHSIG, &pdeath_sig) < 0)
		pdeath_sig = 0;
	pdeath_parent = getppid();
	/* Until the config says otherwise, errors go to stderr. */
	log_open(name, LOG_TO_STDERR);
	load_config(argc, argv);
	snprintf(ident, sizeof(ident), "%s/%s", cf.syslog_name, name);
	log_open(ident, daemon_args.foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG);
	log_set_verbose(daemon_args.verbose);
	/* With TZ unset the C library checks /etc/localtime again on every
	 * date it formats (four system calls per Received: or Date: line);
	 * naming the file makes it read once.  A changed time zone is seen
	 * when the master restarts its children (reload). */
	if (getenv("TZ") == NULL && setenv("TZ", ":/etc/localtime", 0) == 0)
		tzset();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* No SA_RESTART: a blocked accept()/poll() must see SIGTERM. */
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* The master's reload: finish the current work, then exit. */
	sigaction(SIGHUP, &sa, NULL);
}

void daemon_init(int argc, char **argv, const char *name)
{
	daemon_setup(argc, argv, name);
	drop_to_mail_owner();
}

void daemon_init_privileged(int argc, char **argv, const char *name)
{
	daemon_setup(argc, argv, name);
}

void daemon_drop_privileges(void)
{
	drop_to_mail_owner();
}

static void report(int state)
{
	struct master_status st = { self_pid(), state };

	if (write(MASTER_STATUS_FD, &st, sizeof(st)) != (ssize_t)sizeof(st)) {
		/* The master is gone (EPIPE) or the pipe is broken: a child
		 * nobody supervises must not go on accepting. */
		log_warning("status pipe: %s; exiting", strerror(errno));
		exit(1);
	}
}

/*
 * The listener is watched through one epoll descriptor per process with
 * EPOLLEXCLUSIVE: a new connection wakes one idle child, not every idle
 * child of the pool (with poll() each connection woke all of them and all
 * but one found nothing to accept: at 20 sessions that was most of the
 * context switches of a message).  A wake-up the kernel did not deliver
 * costs at most LISTEN_TICK_MS.  Without epoll (EMFILE at the first wait)
 * the child polls as before.
 */
#define LISTEN_TICK_MS 1000
static int listen_epoll = -1;
static int listen_epoll_tried;

/* Wait for the listener with waitmask as the signal mask (the stop signals
 * unblocked atomically with the wait). */
static int wait_readable(int timeout_ms, const sigset_t *waitmask)
{
	if (!listen_epoll_tried) {
		listen_epoll_tried = 1;
		listen_epoll = epoll_create1(EPOLL_CLOEXEC);
		if (listen_epoll >= 0) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };

			if (epoll_ctl(listen_epoll, EPOLL_CTL_ADD, MASTER_LISTEN_FD, &ev) < 0) {
				close(listen_epoll);
				listen_epoll = -1;
			}
		}
	}
	if (listen_epoll >= 0) {
		struct epoll_event ev;

		return epoll_pwait(listen_epoll, &ev, 1, timeout_ms, waitmask);
	}
	struct pollfd pfd = { MASTER_LISTEN_FD, POLLIN, 0 };
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
	return ppoll(&pfd, 1, &ts, waitmask);
}

/* Wait for a connection; -1 on idle timeout or termination. */
static int wait_accept(struct sockaddr_storage *ss, socklen_t *len, int accept_flags)
{
	long long deadline = cf.max_idle > 0 ? clock_ms() + cf.max_idle * 1000 : -1;
	sigset_t stop, waitmask;

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	for (;;) {
		long long left = deadline < 0 ? LISTEN_TICK_MS : deadline - clock_ms();
		int n, fd, err;

		/* The stop signals stay blocked from the check of the flag until
		 * the wait unblocks them: one sent in between (a reload that came
		 * as the child started) ends the wait at once.  Missed, it left
		 * a child told to retire waiting, and then serving the next
		 * connection with whatever configuration it had read. */
		sigprocmask(SIG_BLOCK, &stop, &waitmask);
		if (server_terminating || left <= 0) {
			sigprocmask(SIG_SETMASK, &waitmask, NULL);
			return -1;
		}
		n = wait_readable(left < LISTEN_TICK_MS ? (int)left : LISTEN_TICK_MS, &waitmask);
		err = errno;
		sigprocmask(SIG_SETMASK, &waitmask, NULL); /* delivers one sent since */
		errno = err;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			log_fatal("wait for the listener: %s", strerror(errno));
		if (server_terminating)
			return -1;
		*len = sizeof(*ss);
		/* Also after a tick without a wake-up: a connection may wait. */
		fd = accept4(MASTER_LISTEN_FD, (struct sockaddr *)ss, len, SOCK_CLOEXEC | accept_flags);
		if (fd >= 0)
			return fd;
		/* Nothing there, another child won the race, or the client gave up. */
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Do not spin: let the condition clear. */
			log_warning("accept: %s", strerror(errno));
			sleep(1);
			continue;
		}
		log_fatal("accept: %s", strerror(errno));
	}
}

void server_prefork(server_serve_fn serve)
{
	server_prefork_flags(serve, 0);
}

void server_prefork_flags(server_serve_fn serve, int accept_flags)
{
	long long uses = 0;

	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len;
		int fd;

		report(MASTER_IDLE);
		fd = wait_accept(&ss, &len, accept_flags);
		if (fd < 0)
			exit(0);
		report(MASTER_BUSY);
		serve(fd, (struct sockaddr *)&ss, len);
		close(fd);
		if (++uses >= cf.max_use || server_terminating)
			exit(0);
	}
}
