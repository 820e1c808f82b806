/*
 * smtpd.c — one SMTP session: greeting, command loop, disconnect.
 *
 * Public: smtpd_serve (the prefork skeleton's per-connection callback),
 * smtpd_session_run (the session over any stream; the unit tests' entry),
 * smtpd_reply, smtpd_reply_421, smtpd_txn_reset, smtpd_proto_name.
 *
 * Commands are read through the bounded line reader with the RFC 5321 limit
 * (512 octets with CRLF); an overlong line is answered with 500 and skipped
 * through its LF.  Replies are batched and flushed only when no client bytes
 * are buffered or right before the session would block (RFC 2920).  A read
 * timeout ends the session with 421 4.4.2, the error limit with 421 4.7.0,
 * as does the per-client connection cap in place of the greeting;
 * end of input or a failed write ends it silently.  All of these are logged
 * in Postfix's shape ("timeout after RCPT from host[ip]").
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "localrcpt.h"
#include "log.h"
#include "resolve.h"
#include "smtpd.h"
#include "sock.h"

void
smtpd_init(void)
{
	char err[512];

	if (strcmp(cf.bare_newline, "normalize") != 0 && strcmp(cf.bare_newline, "reject") != 0)
		log_fatal("bare_newline = %s: must be normalize or reject", cf.bare_newline);
	if (localrcpt_init(err, sizeof(err)) < 0)
		log_fatal("%s", err);
	if (resolve_init(err, sizeof(err)) < 0)
		log_fatal("%s", err);
	/* Bound the reverse lookups (smtpd_peer.c): 2 s per try, one retry. */
	if (res_init() == 0) {
		_res.retrans = 2;
		_res.retry = 1;
	}
	smtpd_peer_init();
}

const char *
smtpd_proto_name(const struct smtpd_session *s)
{
	return s->proto == SMTPD_PROTO_ESMTP ? "ESMTP" : "SMTP";
}

void
smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(text))
		log_panic("smtpd_reply: reply longer than %zu bytes", sizeof(text) - 1);
	log_debug("> %s[%s]: %s", s->name, s->ip, text);
	if (stream_put(s->st, text, (size_t)n) == 0)
		stream_put(s->st, "\r\n", 2);
}

void
smtpd_reply_421(struct smtpd_session *s, const char *dsn, const char *text)
{
	smtpd_reply(s, "421 %s %s %s", dsn, cf.myhostname, text);
	stream_flush(s->st);
	s->done = 1;
}

void
smtpd_txn_reset(struct smtpd_session *s)
{
	if (s->bdat != NULL) {
		smtpd_content_abort(s->bdat);
		free(s->bdat);
		s->bdat = NULL;
	}
	qf_envelope_free(&s->env);
	qf_envelope_init(&s->env);
	s->in_mail = 0;
	s->declared_size = 0;
	s->rcpt_overshoot = 0;
}

/* "name=ok" or "name=ok/total" (Postfix's disconnect statistics). */
static void
count_text(struct buf *b, const char *name, unsigned ok, unsigned total)
{
	char lower[32];
	size_t i;

	for (i = 0; name[i] != '\0' && i + 1 < sizeof(lower); i++)
		lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
	lower[i] = '\0';
	if (ok == total)
		buf_printf(b, " %s=%u", lower, total);
	else
		buf_printf(b, " %s=%u/%u", lower, ok, total);
}

static void
log_disconnect(const struct smtpd_session *s)
{
	struct buf b;
	unsigned ok = 0, total = s->unknown_total;
	size_t i;

	buf_init(&b, 1024);
	for (i = 0; i < smtpd_cmd_count; i++) {
		ok += s->cmd_ok[i];
		total += s->cmd_total[i];
		if (s->cmd_total[i] > 0)
			count_text(&b, smtpd_cmd_table[i].verb, s->cmd_ok[i], s->cmd_total[i]);
	}
	if (s->unknown_total > 0)
		count_text(&b, "unknown", 0, s->unknown_total);
	count_text(&b, "commands", ok, total);
	log_info("disconnect from %s[%s]%s", s->name, s->ip, b.data);
	buf_free(&b);
}

/* Read one command line and act on it.  Returns 0 to go on, -1 to end. */
static int
session_step(struct smtpd_session *s)
{
	enum lr_ending ending;
	enum lr_result r;

	/* RFC 2920: reply now only if the client has nothing more queued up. */
	if (lr_pending(&s->lr) == 0 && stream_flush(s->st) < 0)
		return -1;
	lr_set_flags(&s->lr, 0);
	lr_set_max(&s->lr, SMTPD_CMD_MAX);
	/* The whole command line within smtpd_timeout, not just each read. */
	stream_record_start(s->st, cf.smtpd_min_data_rate);
	r = lr_getline(&s->lr, &s->line, &ending);
	stream_record_end(s->st);
	switch (r) {
	case LR_TOOLONG:
		smtpd_reply(s, "500 5.5.2 Error: line too long");
		s->errors++;
		return 0;
	case LR_EOF:
		log_info("lost connection after %s from %s[%s]", s->where, s->name, s->ip);
		return -1;
	case LR_ERROR:
		if (errno == ETIMEDOUT) {
			log_info("timeout after %s from %s[%s]", s->where, s->name, s->ip);
			smtpd_reply_421(s, "4.4.2", "Error: timeout exceeded");
		} else {
			log_info("lost connection after %s from %s[%s]", s->where, s->name, s->ip);
		}
		return -1;
	case LR_LINE:
		break;
	}
	if (ending == LR_END_NONE) {
		/* Input ended inside a command: never act on half a line. */
		log_info("lost connection after %s from %s[%s]", s->where, s->name, s->ip);
		return -1;
	}
	smtpd_cmd_dispatch(s, s->line.data, s->line.len);
	return 0;
}

void
smtpd_session_run(struct smtpd_stream *st, const char *ip, const char *name)
{
	struct smtpd_session s;
	unsigned sessions;

	memset(&s, 0, sizeof(s));
	s.st = st;
	if (str_copy(s.ip, sizeof(s.ip), ip) < 0)
		log_panic("smtpd_session_run: client address too long");
	if (str_copy(s.name, sizeof(s.name), name) < 0)
		str_copy(s.name, sizeof(s.name), "unknown");
	s.where = "CONNECT";
	/* The reader's buffer is sized for content pieces; commands use less. */
	lr_init(&s.lr, stream_lr_read, st, SMTPD_DATA_PIECE, 0);
	buf_init(&s.line, SMTPD_DATA_PIECE);
	qf_envelope_init(&s.env);
	s.trusted = smtpd_check_client_trusted(s.ip);

	log_info("connect from %s[%s]", s.name, s.ip);
	/* The per-client connection cap first: a client holding too many
	 * sessions is not worth a greet pause (smtpd_peer.c).  Then: a client
	 * that talks before the greeting is not waiting for replies: a spam
	 * engine, or a command injection. */
	if ((sessions = smtpd_peer_over_limit(s.ip)) > 0) {
		char why[SMTPD_IP_MAX + 64];

		log_warning("Connection concurrency limit exceeded: %u from %s[%s]", sessions, s.name, s.ip);
		snprintf(why, sizeof(why), "Error: too many connections from %s", s.ip);
		smtpd_reply_421(&s, "4.7.0", why);
	} else if (stream_input_within(st, (int)(cf.smtpd_greet_pause * 1000))) {
		log_info("improper command pipelining after CONNECT from %s[%s]", s.name, s.ip);
		smtpd_reply(&s, "554 5.5.0 Error: SMTP protocol synchronization");
		s.done = 1;
	} else {
		smtpd_reply(&s, "220 %s", cf.smtpd_banner && *cf.smtpd_banner ? cf.smtpd_banner : cf.myhostname);
	}
	while (!s.done && !stream_failed(st)) {
		if (s.errors >= cf.smtpd_hard_error_limit) {
			log_info("too many errors after %s from %s[%s]", s.where, s.name, s.ip);
			smtpd_reply_421(&s, "4.7.0", "Error: too many errors");
			break;
		}
		if (session_step(&s) < 0)
			break;
	}
	stream_flush(st);
	log_disconnect(&s);

	/* A BDAT transfer the client abandoned: remove its queue file. */
	smtpd_txn_reset(&s);
	qf_envelope_free(&s.env);
	buf_free(&s.line);
	lr_free(&s.lr);
}

/*
 * End the connection without losing our last reply: closing a socket that
 * still holds unread client bytes (an early talker, a client that pipelined
 * past a 421) makes the kernel send RST, and the peer may then never read
 * the reply.  So: send FIN, and discard what the client still sends until it
 * closes too - at most 64 KB and 1 s, so a client cannot hold the process.
 */
static void
lingering_close(int fd)
{
	char junk[4096];
	size_t total = 0;
	int i;

	if (shutdown(fd, SHUT_WR) < 0)
		return;
	for (i = 0; i < 20 && total < 65536; i++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		r = read(fd, junk, sizeof(junk));
		if (r <= 0)
			return; /* the client closed (or the connection failed) */
		total += (size_t)r;
	}
}

void
smtpd_serve(int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	struct smtpd_stream st;
	char ip[SMTPD_IP_MAX];
	char name[SMTPD_NAME_MAX];
	const char *shown = ip;
	long long ms;
	int port = 0;

	smtpd_peer_enter(peer, peerlen);
	ip[0] = '\0';
	sock_addr_text(peer, peerlen, ip, sizeof(ip), &port);
	if (ip[0] == '\0')
		str_copy(ip, sizeof(ip), "unknown");
	/* An IPv4 client on a dual-stack socket: show and match it as IPv4. */
	if (strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
		shown = ip + 7;

	if (cf.smtpd_timeout <= 0)
		ms = -1;
	else if (cf.smtpd_timeout > INT_MAX / 1000)
		ms = INT_MAX;
	else
		ms = cf.smtpd_timeout * 1000;
	stream_init_fd(&st, fd, (int)ms);
	smtpd_peername(peer, peerlen, shown, name, sizeof(name));
	/* smtps (465): TLS before the greeting (RFC 8314). */
	if (smtpd_tls_wrap(&st, name, shown) == 0)
		smtpd_session_run(&st, shown, name);
	smtpd_tls_end(&st);
	stream_free(&st);
	lingering_close(fd);
	smtpd_peer_leave();
}
