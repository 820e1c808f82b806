/*
 * sendmail_smtp — sendmail -bs: one SMTP session on stdin/stdout, each
 * message handed to postdrop like a command-line submission (MAIL FROM is
 * the sender, as -f).  Commands are read with the bounded line reader
 * (512 octets, RFC 5321 4.5.3.1.4); message lines of any length are kept
 * (split reads).  DATA ends only at a line ".": LF and CRLF both end lines,
 * the content is dot-unstuffed and stored with LF line ends.  A message
 * over message_size_limit is read to its end and refused with 552.
 * When a reply cannot be written (the reader of stdout went away) the
 * session ends at once with EX_IOERR: no DATA is read after a 354 that
 * did not go out, so nothing is queued that the client was not told of.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "lineread.h"
#include "sendmail.h"
#include "sock.h"

#define CMD_MAX 512
#define DATA_PIECE 65536
#define ERROR_LIMIT 20

/* Set once a reply could not be written: the client is gone, so the
 * session ends and nothing more is read or queued for it. */
static int out_broken;

static void reply(const char *s)
{
	if (out_broken)
		return;
	if (write_all(1, s, strlen(s)) < 0) {
		fprintf(stderr, "sendmail: write to standard output: %s\n", strerror(errno));
		out_broken = 1;
	}
}

/* Read the DATA lines into msg; 0 ok, -1 too big (read to the end), -2 EOF/error. */
static int read_data(struct linereader *lr, struct buf *msg)
{
	struct buf line;
	enum lr_ending end;
	int at_start = 1, big = 0, rc = -2;

	buf_init(&line, DATA_PIECE);
	lr_set_max(lr, DATA_PIECE);
	lr_set_flags(lr, LR_SPLIT);
	while (lr_getline(lr, &line, &end) == LR_LINE) {
		const char *p = line.data;
		size_t n = line.len;

		if (at_start && end != LR_END_NONE && n == 1 && p[0] == '.') {
			rc = big ? -1 : 0;
			break;
		}
		if (at_start && n > 0 && p[0] == '.') {
			p++;
			n--;
		}
		if (!big && (buf_append(msg, p, n) < 0 || (end != LR_END_NONE && buf_putc(msg, '\n') < 0)))
			big = 1;
		at_start = end != LR_END_NONE;
	}
	lr_set_flags(lr, 0);
	lr_set_max(lr, CMD_MAX);
	buf_free(&line);
	return rc;
}

/* "FROM:<addr> params" after the verb: the path into a (canonical); 0/-1. */
static int path_arg(const char *arg, const char *kw, int flags, struct addr *a)
{
	size_t kl = strlen(kw);
	const char *end;

	if (strncasecmp(arg, kw, kl) != 0)
		return -1;
	arg += kl;
	while (*arg == ' ')
		arg++;
	return addr_parse_path(arg, flags | ADDR_NO_BRACKETS | ADDR_ALLOW_NO_DOMAIN | ADDR_UTF8, a, &end) == ADDR_OK
		       ? 0
		       : -1;
}

struct session {
	const struct sm_opts *o;
	struct md_env e;
	int have_mail;
};

static void reset(struct session *s)
{
	md_env_free(&s->e);
	md_env_init(&s->e);
	s->have_mail = 0;
}

static void do_data(struct session *s, struct linereader *lr, int *quit)
{
	struct buf msg;
	struct sm_opts o = *s->o;
	int rc;

	if (!s->have_mail || s->e.nrcpt == 0) {
		reply("503 5.5.1 Error: need MAIL and RCPT first\r\n");
		return;
	}
	reply("354 End data with <CR><LF>.<CR><LF>\r\n");
	if (out_broken) {
		*quit = 1;
		return;
	}
	buf_init(&msg, (size_t)cf.message_size_limit);
	rc = read_data(lr, &msg);
	if (rc == -2) {
		*quit = 1;
	} else if (rc == -1) {
		reply("552 5.3.4 Error: message too big\r\n");
	} else {
		o.extract = 0;
		rc = sm_deliver_buffer(&o, &s->e, &msg);
		reply(rc == EX_OK ? "250 2.0.0 Ok: queued\r\n" : "451 4.3.0 Error: queue file write error\r\n");
	}
	buf_free(&msg);
	reset(s);
}

/* One command line; sets *quit at QUIT.  Returns 1 when it was an error. */
static int command(struct session *s, struct linereader *lr, const char *l, int *quit)
{
	struct addr a;

	if (!strncasecmp(l, "EHLO", 4) || !strncasecmp(l, "HELO", 4)) {
		reset(s);
		reply(!strncasecmp(l, "EHLO", 4) ? "250-localhost\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
						 : "250 localhost\r\n");
	} else if (!strncasecmp(l, "MAIL ", 5)) {
		if (s->have_mail)
			return reply("503 5.5.1 Error: nested MAIL command\r\n"), 1;
		if (path_arg(l + 5, "FROM:", ADDR_ALLOW_NULL, &a) < 0)
			return reply("501 5.1.7 Bad sender address syntax\r\n"), 1;
		free(s->e.sender);
		s->e.sender = strdup(a.is_null ? "" : a.mailbox);
		s->e.flags = s->o->flags | MD_F_SENDER | (strcasestr(l, "BODY=8BITMIME") ? 1u : 0u);
		s->have_mail = s->e.sender != NULL;
		reply("250 2.1.0 Ok\r\n");
	} else if (!strncasecmp(l, "RCPT ", 5)) {
		if (!s->have_mail)
			return reply("503 5.5.1 Error: need MAIL command\r\n"), 1;
		if (s->e.nrcpt >= (size_t)cf.smtpd_recipient_limit)
			return reply("452 4.5.3 Error: too many recipients\r\n"), 1;
		if (path_arg(l + 5, "TO:", 0, &a) < 0 || sm_add_rcpt(&s->e, a.mailbox, s->o->notify) < 0)
			return reply("501 5.1.3 Bad recipient address syntax\r\n"), 1;
		reply("250 2.1.5 Ok\r\n");
	} else if (!strcasecmp(l, "DATA")) {
		do_data(s, lr, quit);
	} else if (!strcasecmp(l, "RSET")) {
		reset(s);
		reply("250 2.0.0 Ok\r\n");
	} else if (!strcasecmp(l, "NOOP")) {
		reply("250 2.0.0 Ok\r\n");
	} else if (!strncasecmp(l, "VRFY", 4)) {
		reply("252 2.0.0 Send some mail, I'll try my best\r\n");
	} else if (!strcasecmp(l, "QUIT")) {
		reply("221 2.0.0 Bye\r\n");
		*quit = 1;
	} else {
		reply("502 5.5.2 Error: command not recognized\r\n");
		return 1;
	}
	return 0;
}

int sm_smtp(const struct sm_opts *o)
{
	struct linereader lr;
	struct buf line;
	struct session s;
	enum lr_ending end;
	enum lr_result r;
	int quit = 0, errors = 0;
	char banner[512];

	memset(&s, 0, sizeof(s));
	s.o = o;
	md_env_init(&s.e);
	lr_init_fd(&lr, 0, DATA_PIECE, 0, (int)(cf.smtpd_timeout * 1000));
	lr_set_max(&lr, CMD_MAX);
	buf_init(&line, DATA_PIECE);
	snprintf(banner, sizeof(banner), "220 %s ESMTP tern (sendmail -bs)\r\n", cf.myhostname);
	reply(banner);
	while (!quit && !out_broken && errors < ERROR_LIMIT) {
		r = lr_getline(&lr, &line, &end);
		if (r == LR_TOOLONG) {
			reply("500 5.5.2 Error: line too long\r\n");
			errors++;
			continue;
		}
		if (r != LR_LINE)
			break;
		if (memchr(line.data, 0, line.len)) {
			reply("500 5.5.2 Error: NUL in command\r\n");
			errors++;
			continue;
		}
		errors += command(&s, &lr, line.data, &quit);
	}
	if (errors >= ERROR_LIMIT)
		reply("421 4.7.0 Error: too many errors\r\n");
	md_env_free(&s.e);
	buf_free(&line);
	lr_free(&lr);
	return out_broken ? EX_IOERR : EX_OK;
}
