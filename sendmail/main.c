/*
 * tern-sendmail — main: parse the command line, load the configuration
 * (-C, else $TERN_CONFIG, else the default: this program has no privilege,
 * so the caller's environment is trusted as much as the caller), then run
 * the mode.  Not setuid or setgid: the privileged step is postdrop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "sendmail.h"

#ifndef TERN_SYSCONFDIR
#define TERN_SYSCONFDIR "/etc/tern"
#endif

struct rcpt_ctx {
	struct md_env *e;
	unsigned notify;
};

static int add_one(void *ctx, const char *addr)
{
	struct rcpt_ctx *x = ctx;

	return sm_add_rcpt(x->e, addr, x->notify);
}

static int deliver(const struct sm_opts *o)
{
	struct md_env e;
	struct rcpt_ctx x;
	struct buf msg;
	int i, rc;

	md_env_init(&e);
	x.e = &e;
	x.notify = o->notify;
	e.flags = o->flags | (o->sender ? MD_F_SENDER : 0);
	free(e.sender);
	e.sender = strdup(o->sender ? o->sender : "");
	free(e.envid);
	e.envid = strdup(o->envid ? o->envid : "");
	if (!e.sender || !e.envid) {
		md_env_free(&e);
		return EX_OSERR;
	}
	for (i = 0; i < o->nrcpts; i++) {
		if (sm_addr_list(o->rcpts[i], strlen(o->rcpts[i]), add_one, &x) < 0) {
			fprintf(stderr, "sendmail: bad recipient: %.300s\n", o->rcpts[i]);
			md_env_free(&e);
			return EX_DATAERR;
		}
	}
	if (e.nrcpt == 0 && !o->extract) {
		fprintf(stderr, "sendmail: recipient addresses must be given on the command line or with -t\n");
		md_env_free(&e);
		return EX_USAGE;
	}
	buf_init(&msg, (size_t)cf.message_size_limit);
	rc = sm_read_message(0, o->dot_ends, &msg);
	if (rc == -1) {
		fprintf(stderr, "sendmail: message too big (message_size_limit is %lld bytes)\n", cf.message_size_limit);
		rc = EX_DATAERR;
	} else if (rc < 0) {
		perror("sendmail: read standard input");
		rc = EX_IOERR;
	} else {
		rc = sm_deliver_buffer(o, &e, &msg);
	}
	buf_free(&msg);
	md_env_free(&e);
	return rc;
}

int main(int argc, char **argv)
{
	struct sm_opts o;
	char err[1024];
	int rc;

	log_open("sendmail", LOG_TO_STDERR);
	signal(SIGPIPE, SIG_IGN); /* a dead postdrop is an error status, not a kill */
	rc = sm_parse_args(argc, argv, &o);
	if (rc != 0)
		return rc;
	if (!o.config) {
		const char *env = getenv("TERN_CONFIG");

		if (env && *env)
			o.config = env;
	}
	if (conf_load(o.config ? o.config : TERN_SYSCONFDIR "/tern.conf", err, sizeof(err)) < 0 ||
	    conf_finish(err, sizeof(err)) < 0) {
		fprintf(stderr, "sendmail: %s\n", err);
		return EX_CONFIG;
	}
	switch (o.mode) {
	case SM_MAILQ: return sm_exec_ctl(&o, "mailq", o.rcpts);
	case SM_NEWALIASES: return sm_exec_ctl(&o, "newaliases", NULL);
	case SM_FLUSH: return sm_flush(&o);
	case SM_SMTP: return sm_smtp(&o);
	default: return deliver(&o);
	}
}
