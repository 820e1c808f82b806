/*
 * sendmail_post — hand a message to postdrop, run mailq/newaliases/flush.
 *
 * sendmail itself has no privilege: it reads the configuration (for
 * daemon_directory, myorigin, message_size_limit), builds the whole
 * message in memory (bounded by message_size_limit) and writes the
 * maildrop stream (common/maildrop.h) into the setgid postdrop's stdin.
 * Only postdrop's exit status says whether the message was accepted.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "sendmail.h"
#include "sock.h"
#include "xalloc.h"

int sm_add_rcpt(struct md_env *e, const char *addr, unsigned notify)
{
	struct addr a;

	if (e->nrcpt >= SM_MAX_RCPT) {
		fprintf(stderr, "sendmail: too many recipients (at most %d per message)\n", SM_MAX_RCPT);
		return -1;
	}
	if (addr_parse_mailbox(addr, ADDR_NO_BRACKETS | ADDR_ALLOW_NO_DOMAIN | ADDR_UTF8, &a) != ADDR_OK ||
	    a.is_null) {
		fprintf(stderr, "sendmail: bad recipient address: %.300s\n", addr);
		return -1;
	}
	md_add_rcpt(e, a.mailbox, notify);
	return 0;
}

/* Run daemon_directory/PROG with argv, stdin from a pipe that gets data.
 * Returns the program's exit status as a sysexits code. */
static int run_postdrop(const struct sm_opts *o, const char *flag, const struct buf *hdr, const char *content,
			size_t len)
{
	char path[4096];
	char *argv[6];
	int p[2], st, argc = 0, werr = 0;
	pid_t pid;

	if (snprintf(path, sizeof(path), "%s/postdrop", cf.daemon_directory) >= (int)sizeof(path))
		return EX_CONFIG;
	argv[argc++] = (char *)"postdrop";
	if (o->config) {
		argv[argc++] = (char *)"-c";
		argv[argc++] = (char *)o->config;
	}
	if (flag)
		argv[argc++] = (char *)flag;
	argv[argc] = NULL;
	if (pipe(p) < 0)
		return EX_OSERR;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return EX_OSERR;
	}
	if (pid == 0) {
		if (dup2(p[0], 0) < 0)
			_exit(EX_OSERR);
		close(p[0]);
		close(p[1]);
		execv(path, argv);
		fprintf(stderr, "sendmail: cannot run %s: %s\n", path, strerror(errno));
		_exit(EX_UNAVAILABLE);
	}
	close(p[0]);
	if (hdr && (write_all(p[1], hdr->data, hdr->len) < 0 || write_all(p[1], content, len) < 0))
		werr = errno;
	close(p[1]);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return EX_OSERR;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		return WEXITSTATUS(st);
	if (!WIFEXITED(st)) {
		fprintf(stderr, "sendmail: postdrop was killed by signal %d\n", WTERMSIG(st));
		return EX_TEMPFAIL;
	}
	if (werr) {
		fprintf(stderr, "sendmail: write to postdrop: %s\n", strerror(werr));
		return EX_TEMPFAIL;
	}
	return EX_OK;
}

int sm_postdrop(const struct sm_opts *o, struct md_env *e, const char *content, size_t len)
{
	struct buf hdr;
	int rc;

	e->length = len;
	buf_init(&hdr, MD_MAX_HEADER);
	if (md_format(&hdr, e, MD_STREAM) < 0) {
		buf_free(&hdr);
		fprintf(stderr, "sendmail: bad envelope (sender, envelope id or recipients)\n");
		return EX_DATAERR;
	}
	rc = run_postdrop(o, NULL, &hdr, content, len);
	buf_free(&hdr);
	return rc;
}

int sm_flush(const struct sm_opts *o)
{
	return run_postdrop(o, "-q", NULL, NULL, 0);
}

int sm_exec_ctl(const struct sm_opts *o, const char *as, char **args)
{
	char self[PATH_MAX], path[PATH_MAX + 16];
	char *argv[64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;
	int argc = 0, i;

	/* ternctl is installed next to tern-sendmail (SBINDIR, or build/sbin). */
	if (n <= 0)
		return EX_OSERR;
	self[n] = 0;
	slash = strrchr(self, '/');
	if (!slash)
		return EX_OSERR;
	*slash = 0;
	snprintf(path, sizeof(path), "%s/ternctl", self);
	argv[argc++] = (char *)as;
	if (o->config) {
		if (strcmp(as, "mailq") == 0) {
			if (setenv("TERN_CONFIG", o->config, 1) < 0)
				return EX_OSERR;
		} else {
			argv[argc++] = (char *)"-c";
			argv[argc++] = (char *)o->config;
		}
	}
	for (i = 0; args && args[i] && argc < 62; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	execv(path, argv);
	fprintf(stderr, "sendmail: cannot run %s: %s\n", path, strerror(errno));
	return EX_UNAVAILABLE;
}

struct extract_ctx {
	struct md_env *e;
	unsigned notify;
};

static int extract_one(void *ctx, const char *addr)
{
	struct extract_ctx *x = ctx;

	return sm_add_rcpt(x->e, addr, x->notify);
}

int sm_deliver_buffer(const struct sm_opts *o, struct md_env *e, const struct buf *msg)
{
	struct extract_ctx x = { e, o->notify };
	struct buf out;
	char err[256];
	int rc;

	buf_init(&out, msg->max + 8192);
	if (sm_fix_headers(msg, o->extract, o, extract_one, &x, &out, err, sizeof(err)) < 0) {
		/* Past the cap sm_add_rcpt has said so; the address was fine. */
		if (e->nrcpt < SM_MAX_RCPT)
			fprintf(stderr, "sendmail: %s\n", err);
		buf_free(&out);
		return EX_DATAERR;
	}
	if (e->nrcpt == 0) {
		fprintf(stderr, "sendmail: %s\n", o->extract ? "no recipient addresses found in message header"
							     : "no recipients specified");
		buf_free(&out);
		return EX_USAGE;
	}
	rc = sm_postdrop(o, e, out.data, out.len);
	buf_free(&out);
	return rc;
}
