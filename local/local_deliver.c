/*
 * local_deliver — run one delivery with the right identity.
 *
 * The root part of the agent stays tiny: when the destination needs another
 * uid, a child is forked that drops to the mailbox owner's uid/gid and
 * supplementary groups (privs_drop, which verifies the drop and is fatal on
 * any failure), checks once more that it cannot be root, and only then
 * touches any path.  The child sends its result back over a pipe as one
 * fixed-size record (smaller than PIPE_BUF, so written atomically); the
 * parent validates it and gives the child LOCAL_CHILD_TIMEOUT seconds
 * before killing it.  A child that dies without a result is a temporary
 * failure.
 *
 * Loop detection (Delivered-To: already naming this recipient) happens
 * here, before any mailbox is touched.
 *
 * Public: local_deliver_dest.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "log.h"
#include "privs.h"

struct child_result {
	int status; /* enum deliver_status */
	char dsn[16];
	char text[DELIVER_MAX_TEXT];
};

/* The delivery proper, with the identity already right. */
static void deliver_as_self(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			    struct deliver_rcpt *rc)
{
	switch (d->kind) {
	case LOCAL_DEST_MAILDIR:
		maildir_deliver(d, msg, sender, rc->address, rc);
		return;
	case LOCAL_DEST_MBOX:
		deliver_set_result(rc, DELIVER_TEMP, "4.3.5", "mbox delivery not available");
		return;
	}
	log_panic("local_deliver: unknown destination kind %d", (int)d->kind);
}

__attribute__((noreturn)) static void child_main(int wfd, const struct local_dest *d, const struct local_msg *msg,
						const char *sender, const struct deliver_rcpt *orig)
{
	struct deliver_rcpt rc = *orig;
	struct child_result res;

	privs_drop(d->uid, d->gid, NULL, d->pw_name[0] ? d->pw_name : NULL);
	if (geteuid() == 0 || getuid() == 0 || d->uid == 0)
		log_panic("local delivery child still has uid 0");
	deliver_as_self(d, msg, sender, &rc);
	memset(&res, 0, sizeof(res));
	res.status = (int)rc.status;
	memcpy(res.dsn, rc.dsn, sizeof(res.dsn));
	memcpy(res.text, rc.text, sizeof(res.text));
	res.dsn[sizeof(res.dsn) - 1] = '\0';
	res.text[sizeof(res.text) - 1] = '\0';
	ssize_t w;
	do
		w = write(wfd, &res, sizeof(res));
	while (w < 0 && errno == EINTR);
	_exit(w == (ssize_t)sizeof(res) ? 0 : 1);
}

/* Read the child's record within the deadline.  1 when complete. */
static int read_result(int rfd, struct child_result *res)
{
	size_t got = 0;
	time_t deadline = time(NULL) + LOCAL_CHILD_TIMEOUT;
	while (got < sizeof(*res)) {
		time_t now = time(NULL);
		if (now >= deadline)
			return 0;
		struct pollfd p = { .fd = rfd, .events = POLLIN };
		int r = poll(&p, 1, (int)(deadline - now) * 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		ssize_t n = read(rfd, (char *)res + got, sizeof(*res) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		got += (size_t)n;
	}
	return 1;
}

static void deliver_in_child(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			     struct deliver_rcpt *rc)
{
	int pfd[2];
	struct child_result res;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot create pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot fork: %s", strerror(e));
		return;
	}
	if (pid == 0) {
		close(pfd[0]);
		child_main(pfd[1], d, msg, sender, rc);
	}
	close(pfd[1]);
	int ok = read_result(pfd[0], &res);
	close(pfd[0]);
	if (!ok)
		kill(pid, SIGKILL);
	int wst = 0;
	pid_t w;
	do
		w = waitpid(pid, &wst, 0);
	while (w < 0 && errno == EINTR);
	if (w == pid && !(WIFEXITED(wst) && WEXITSTATUS(wst) == 0))
		ok = 0;

	if (ok) {
		res.dsn[sizeof(res.dsn) - 1] = '\0';
		res.text[sizeof(res.text) - 1] = '\0';
		int st = res.status;
		char cls = res.dsn[0];
		if ((st == DELIVER_OK && cls == '2') || (st == DELIVER_TEMP && cls == '4') ||
		    (st == DELIVER_PERM && cls == '5')) {
			deliver_set_result(rc, (enum deliver_status)st, res.dsn, "%s", res.text);
			return;
		}
		log_warning("delivery child for %s sent an inconsistent result", rc->address);
	} else {
		log_warning("delivery child %ld for %s failed or timed out", (long)pid, rc->address);
	}
	deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "local delivery process failed");
}

void local_deliver_dest(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			struct deliver_rcpt *rc)
{
	if (msg->too_many_delivered_to) {
		deliver_set_result(rc, DELIVER_PERM, "5.4.6", "mail forwarding loop (too many Delivered-To headers)");
		return;
	}
	if (local_msg_has_delivered_to(msg, rc->address)) {
		deliver_set_result(rc, DELIVER_PERM, "5.4.6", "mail forwarding loop for %s", rc->address);
		return;
	}
	if (d->switch_user)
		deliver_in_child(d, msg, sender, rc);
	else
		deliver_as_self(d, msg, sender, rc);
}
