/*
 * pipe — deliver to a |command: /bin/sh -c COMMAND with the message on stdin.
 *
 * Runs inside the delivery child, so the command already has the right
 * uid/gid (the user for .forward, default_privs for the aliases file).  The
 * command gets its own session (so a time-out kills its whole process
 * group), fds 0 (the message: From_ line, Return-Path:, Delivered-To:, then
 * the content), 1 and 2 (one pipe back to us) and nothing else, the home
 * directory as working directory and a minimal environment: HOME, USER,
 * LOGNAME, SHELL, PATH, SENDER, RECIPIENT, LOCAL, EXTENSION, DOMAIN,
 * ORIGINAL_RECIPIENT.
 *
 * Results: exit 0 delivered; 75 (EX_TEMPFAIL), a signal or the time limit
 * (command_time_limit) deferred; 67 (EX_NOUSER) bounced 5.1.1; any other
 * status bounced 5.3.0.  The first line of the command's output (at most
 * PIPE_OUT_KEEP bytes are kept; the rest is read and dropped, so a chatty
 * command cannot block or fill memory) goes into the DSN text.  A command
 * that does not read its input is fine: EPIPE ends the writing.
 *
 * Public: pipe_deliver.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
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

#define PIPE_OUT_KEEP 512
#define ENV_MAX 12

static int set_env(char **env, int *n, struct buf *store, const char *name, const char *value)
{
	size_t off = store->len;
	if (*n >= ENV_MAX || buf_printf(store, "%s=%s", name, value) < 0 || buf_putc(store, '\0') < 0)
		return -1;
	env[(*n)++] = (char *)(uintptr_t)off; /* fixed up once the store stops moving */
	return 0;
}

__attribute__((noreturn)) static void exec_command(const struct local_dest *d, const char *sender,
						  const char *rcpt, int in, int out)
{
	char *env[ENV_MAX + 1];
	struct buf store;
	int n = 0;
	const char *at = strrchr(rcpt, '@');
	char local[ADDR_SIZE];
	size_t llen = at ? (size_t)(at - rcpt) : strlen(rcpt);
	if (llen >= sizeof(local))
		llen = sizeof(local) - 1;
	memcpy(local, rcpt, llen);
	local[llen] = '\0';

	buf_init(&store, 8 * ADDR_SIZE + 3 * PATH_MAX + 256);
	const char *user = d->pw_name[0] ? d->pw_name : d->user;
	if (set_env(env, &n, &store, "HOME", d->home) < 0 || set_env(env, &n, &store, "USER", user) < 0 ||
	    set_env(env, &n, &store, "LOGNAME", user) < 0 || set_env(env, &n, &store, "SHELL", d->shell) < 0 ||
	    set_env(env, &n, &store, "PATH", "/usr/local/bin:/usr/bin:/bin") < 0 ||
	    set_env(env, &n, &store, "SENDER", sender) < 0 || set_env(env, &n, &store, "RECIPIENT", rcpt) < 0 ||
	    set_env(env, &n, &store, "LOCAL", local) < 0 || set_env(env, &n, &store, "EXTENSION", d->ext) < 0 ||
	    set_env(env, &n, &store, "DOMAIN", at ? at + 1 : "") < 0 ||
	    set_env(env, &n, &store, "ORIGINAL_RECIPIENT", d->orcpt ? d->orcpt : "") < 0)
		_exit(75);
	for (int i = 0; i < n; i++)
		env[i] = store.data + (uintptr_t)env[i];
	env[n] = NULL;

	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(75);
	/* Only fds 0-2 reach the command. */
	long maxfd = sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	for (long fd = 3; fd < maxfd; fd++)
		(void)close((int)fd);
	if (chdir(d->home) < 0 && chdir("/") < 0)
		_exit(75);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGXFSZ, SIG_DFL);
	execle("/bin/sh", "sh", "-c", d->path, (char *)NULL, env);
	_exit(75);
}

/* Feed state: the header, then the content, written as the pipe drains. */
struct feed {
	struct buf head;
	size_t head_off;
	const struct local_msg *msg;
	unsigned long long pos;
	char chunk[LOCAL_CHUNK];
	size_t clen, coff;
};

/* Write what the pipe takes now.  1 finished, 0 more to do, -1 error. */
static int feed_some(struct feed *f, int fd)
{
	for (;;) {
		const char *p;
		size_t n;
		if (f->head_off < f->head.len) {
			p = f->head.data + f->head_off;
			n = f->head.len - f->head_off;
		} else {
			if (f->coff == f->clen) {
				ssize_t r = local_msg_pread(f->msg, f->pos, f->chunk, sizeof(f->chunk));
				if (r < 0)
					return -1;
				if (r == 0)
					return 1;
				f->pos += (unsigned long long)r;
				f->clen = (size_t)r;
				f->coff = 0;
			}
			p = f->chunk + f->coff;
			n = f->clen - f->coff;
		}
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w < 0)
			return errno == EPIPE ? 1 : -1; /* a command may ignore its input */
		if (f->head_off < f->head.len)
			f->head_off += (size_t)w;
		else
			f->coff += (size_t)w;
	}
}

static void map_status(struct deliver_rcpt *rc, const struct local_dest *d, int wst, const char *out)
{
	if (WIFEXITED(wst) && WEXITSTATUS(wst) == 0) {
		deliver_set_result(rc, DELIVER_OK, "2.0.0", "delivered to command: %s", d->path);
		return;
	}
	if (WIFSIGNALED(wst)) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "command %s killed by signal %d%s%s", d->path,
				   WTERMSIG(wst), *out ? ": " : "", out);
		return;
	}
	int code = WEXITSTATUS(wst);
	const char *dsn = code == 75 ? "4.3.0" : code == 67 ? "5.1.1" : "5.3.0";
	deliver_set_result(rc, code == 75 ? DELIVER_TEMP : DELIVER_PERM, dsn, "command %s failed: exit %d%s%s",
			   d->path, code, *out ? ": " : "", out);
}

void pipe_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender, const char *rcpt,
		  struct deliver_rcpt *rc)
{
	int in[2], out[2];
	char keep[PIPE_OUT_KEEP + 1];
	size_t kept = 0;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot create pipe: %s", strerror(errno));
		return;
	}
	signal(SIGPIPE, SIG_IGN);
	pid_t pid = fork();
	if (pid < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot fork: %s", strerror(errno));
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		return;
	}
	if (pid == 0) {
		setsid();
		exec_command(d, sender, rcpt, in[0], out[1]);
	}
	close(in[0]);
	close(out[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);

	struct feed *f = calloc(1, sizeof(*f));
	if (f == NULL)
		log_fatal("out of memory");
	f->msg = msg;
	buf_init(&f->head, 2 * ADDR_SIZE + 128);
	time_t now = time(NULL);
	char date[64];
	struct tm tm;
	if (localtime_r(&now, &tm) == NULL || strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		date[0] = '\0';
	if (buf_printf(&f->head, "From %s  %s\nReturn-Path: <%s>\nDelivered-To: %s\n",
		       *sender ? sender : "MAILER-DAEMON", date, sender, rcpt) < 0)
		buf_reset(&f->head);

	/* The time limit runs on the monotonic clock (a wall-clock jump must
	 * not kill the command at once, nor let it run for a day). */
	long long deadline = clock_ms() + (long long)cf.command_time_limit * 1000;
	int wfd = in[1], rfd = out[0], timed_out = 0, werr = 0;
	while (rfd >= 0) {
		struct pollfd p[2];
		int np = 0;
		p[np++] = (struct pollfd){ .fd = rfd, .events = POLLIN };
		if (wfd >= 0)
			p[np++] = (struct pollfd){ .fd = wfd, .events = POLLOUT };
		long long t = clock_ms();
		if (t >= deadline) {
			timed_out = 1;
			break;
		}
		int r = poll(p, (nfds_t)np, (int)(deadline - t));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (np == 2 && p[1].revents) {
			int fr = feed_some(f, wfd);
			if (fr != 0) {
				werr = fr < 0;
				close(wfd);
				wfd = -1;
			}
		}
		if (p[0].revents) {
			char tmp[4096];
			ssize_t n = read(rfd, tmp, sizeof(tmp));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(rfd);
				rfd = -1;
				continue;
			}
			size_t take = (size_t)n < PIPE_OUT_KEEP - kept ? (size_t)n : PIPE_OUT_KEEP - kept;
			memcpy(keep + kept, tmp, take);
			kept += take;
		}
	}
	if (wfd >= 0)
		close(wfd);
	if (rfd >= 0)
		close(rfd);
	buf_free(&f->head);
	free(f);

	int wst = 0;
	pid_t w = 0;
	/* The output closed; the command may still be running: wait, bounded. */
	/* NOLINTNEXTLINE(clang-analyzer-deadcode.DeadStores): the loop only tests the result; w names it */
	while (!timed_out && (w = waitpid(pid, &wst, WNOHANG)) == 0) {
		if (clock_ms() >= deadline) {
			timed_out = 1;
			break;
		}
		struct timespec ts = { 0, 20000000L };
		nanosleep(&ts, NULL);
	}
	if (timed_out) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
			;
		log_warning("command %s for %s: time limit of %llds exceeded", d->path, rcpt,
			    (long long)cf.command_time_limit);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "command time limit exceeded: %s", d->path);
		return;
	}
	/* Leftover members of its process group are not ours to keep. */
	kill(-pid, SIGKILL);
	keep[kept] = '\0';
	char *nl = strchr(keep, '\n');
	if (nl)
		*nl = '\0';
	if (werr && WIFEXITED(wst) && WEXITSTATUS(wst) == 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot read the message for %s", d->path);
		return;
	}
	map_status(rc, d, wst, keep);
}
