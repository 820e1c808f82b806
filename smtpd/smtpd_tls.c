/*
 * smtpd_tls.c — STARTTLS (RFC 3207), implicit TLS (RFC 8314) and the
 * service mode of this smtpd process.
 *
 * Public: smtpd_mode, smtpd_tls_init, smtpd_tls_offer, smtpd_tls_required,
 * smtpd_starttls_check, smtpd_starttls, smtpd_tls_wrap, smtpd_tls_end.
 *
 * The mode follows the address of the inherited listening socket: an
 * address listed in smtps_listen is implicit TLS + submission, one in
 * submission_listen is submission (AUTH before MAIL), anything else is the
 * port 25 service.  So one program serves all three and the master's
 * service table needs no per-service options.
 *
 * The certificate and the private key are read in smtpd_tls_init while
 * the process is still root (before daemon_drop_privileges), so the key
 * file can be root:root 0600 (docs/architecture.md says why the key then
 * stays in smtpd's memory).  A reload (SIGHUP) starts a new generation of
 * smtpd processes, which read the files again: that is the certificate
 * reload.
 *
 * STARTTLS and the CVE-2011-0411 class of injection: after "220 Ready to
 * start TLS" every byte the line reader already holds (plaintext the client
 * pipelined behind STARTTLS) is discarded and logged before the handshake,
 * so nothing sent in plaintext can be answered inside TLS; then the session
 * forgets everything it knew (HELO, transaction, AUTH) and wants EHLO again.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "conf.h"
#include "log.h"
#include "proto_master.h"
#include "smtpd.h"
#include "sock.h"
#include "strutil.h"
#include "tls.h"

enum smtpd_mode smtpd_mode = SMTPD_MODE_SMTP;
static SSL_CTX *server_ctx;

/* Does the textual address a equal host (numerically when both parse)? */
static int
same_host(const char *host, const char *ip)
{
	unsigned char a[16], b[16];

	if (strcmp(host, ip) == 0)
		return 1;
	if (inet_pton(AF_INET, host, a) == 1 && inet_pton(AF_INET, ip, b) == 1)
		return memcmp(a, b, 4) == 0;
	if (inet_pton(AF_INET6, host, a) == 1 && inet_pton(AF_INET6, ip, b) == 1)
		return memcmp(a, b, 16) == 0;
	return strcmp(host, "localhost") == 0 && strcmp(ip, "127.0.0.1") == 0;
}

/* 1 when one of the list's host:port entries is ip:port. */
static int
list_has_listener(const char *list, const char *ip, int port)
{
	const char *p = list ? list : "";
	char entry[300], host[256], portstr[32];
	int r;

	while ((r = list_next(&p, entry, sizeof(entry))) != 0) {
		if (r < 0 || sock_split_hostport(entry, host, sizeof(host), portstr, sizeof(portstr)) < 0)
			continue;
		/* NOLINTNEXTLINE(cert-err34-c): portstr came from sock_split_hostport; a bad one is 0 and matches no port */
		if (atoi(portstr) != port)
			continue;
		if (host[0] == '\0' || strcmp(host, "*") == 0 || same_host(host, ip))
			return 1;
	}
	return 0;
}

/* The mode from the listening socket's own address. */
static void
find_mode(void)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN + 8];
	int port = 0;

	if (getsockname(MASTER_LISTEN_FD, (struct sockaddr *)&ss, &len) < 0)
		return; /* not started by the master (tests): port 25 style */
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return;
	ip[0] = '\0';
	sock_addr_text((struct sockaddr *)&ss, len, ip, sizeof(ip), &port);
	if (list_has_listener(cf.smtps_listen, ip, port))
		smtpd_mode = SMTPD_MODE_SMTPS;
	else if (list_has_listener(cf.submission_listen, ip, port))
		smtpd_mode = SMTPD_MODE_SUBMISSION;
}

void
smtpd_tls_init(void)
{
	char err[1024], path[4096];
	int needed;

	find_mode();
	needed = smtpd_mode == SMTPD_MODE_SMTPS || strcmp(cf.smtpd_tls_security_level, "encrypt") == 0;
	if (cf.smtpd_tls_cert_file[0] == '\0' || strcmp(cf.smtpd_tls_security_level, "none") == 0) {
		if (smtpd_mode == SMTPD_MODE_SMTPS)
			log_fatal("smtps_listen needs smtpd_tls_cert_file (and a security level other than none)");
		if (needed)
			log_fatal("smtpd_tls_security_level = encrypt needs smtpd_tls_cert_file");
		return;
	}
	server_ctx = tls_server_ctx(cf.smtpd_tls_cert_file, cf.smtpd_tls_key_file, cf.smtpd_tls_min_version,
				    cf.smtpd_tls_cipherlist, cf.smtpd_tls_ciphersuites, err, sizeof(err));
	if (server_ctx == NULL) {
		if (needed)
			log_fatal("TLS: %s", err);
		log_warning("TLS: %s; STARTTLS is not offered", err);
		return;
	}
	if (snprintf(path, sizeof(path), "%s/private/tls_ticket.key", cf.queue_directory) >= (int)sizeof(path) ||
	    tls_ticket_keys(server_ctx, path, cf.smtpd_tls_ticket_lifetime, err, sizeof(err)) < 0)
		log_warning("TLS session tickets: %s; resumption works only within one process", err);
}

int
smtpd_tls_offer(const struct smtpd_session *s)
{
	return server_ctx != NULL && s->st->tls == NULL && s->st->fd >= 0;
}

int
smtpd_tls_required(const struct smtpd_session *s)
{
	return s->st->tls == NULL &&
	       (smtpd_mode == SMTPD_MODE_SMTPS || strcmp(cf.smtpd_tls_security_level, "encrypt") == 0);
}

const char *
smtpd_starttls_check(const struct smtpd_session *s)
{
	if (s->st->tls != NULL)
		return "554 5.5.1 Error: TLS already active";
	if (server_ctx == NULL || s->st->fd < 0)
		return "502 5.5.1 Error: command not implemented";
	if (s->proto == SMTPD_PROTO_NONE)
		return "503 5.5.1 Error: send EHLO first";
	if (s->in_mail)
		return "503 5.5.1 Error: MAIL transaction in progress";
	return NULL;
}

static ssize_t
tls_stream_read(void *ctx, void *p, size_t n, int timeout_ms)
{
	struct smtpd_stream *st = ctx;

	return tls_read_wait(st->tls, st->fd, p, n, timeout_ms);
}

static ssize_t
tls_stream_write(void *ctx, const void *p, size_t n, int timeout_ms)
{
	struct smtpd_stream *st = ctx;

	return tls_write_wait(st->tls, st->fd, p, n, timeout_ms);
}

/* Handshake on st's fd and switch the stream to TLS.  0 or -1 (logged). */
static int
handshake(struct smtpd_stream *st, const char *name, const char *ip)
{
	char why[512];
	SSL *ssl;

	if ((ssl = SSL_new(server_ctx)) == NULL || SSL_set_fd(ssl, st->fd) != 1) {
		log_warning("cannot start TLS for %s[%s]: %s", name, ip, tls_errors(why, sizeof(why)));
		SSL_free(ssl);
		return -1;
	}
	SSL_set_accept_state(ssl);
	if (tls_handshake_wait(ssl, st->fd, st->timeout_ms) < 0) {
		int e = errno;

		tls_errors(why, sizeof(why));
		log_info("SSL_accept error from %s[%s]: %s", name, ip,
			 why[0] ? why : e == ETIMEDOUT ? "timed out" : e == ECONNRESET ? "lost connection" : strerror(e));
		SSL_free(ssl);
		return -1;
	}
	st->tls = ssl;
	tls_describe(ssl, st->tls_info, sizeof(st->tls_info));
	stream_set_io(st, tls_stream_read, tls_stream_write, st);
	log_info("Anonymous TLS connection established from %s[%s]: %s%s", name, ip, st->tls_info,
		 SSL_session_reused(ssl) ? " (session resumed)" : "");
	return 0;
}

int
smtpd_starttls(struct smtpd_session *s, char *args)
{
	size_t junk;

	if (args[0] != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return -1;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	if (stream_flush(s->st) < 0) {
		s->done = 1;
		return -1;
	}
	/* RFC 3207 / CVE-2011-0411: plaintext behind STARTTLS is never acted on. */
	if ((junk = lr_pending(&s->lr)) > 0) {
		log_info("improper command pipelining after STARTTLS from %s[%s]: %zu bytes discarded", s->name, s->ip,
			 junk);
		lr_discard_pending(&s->lr);
	}
	if (handshake(s->st, s->name, s->ip) < 0) {
		s->done = 1;
		return -1;
	}
	/* RFC 3207 4.2: forget everything learned before TLS. */
	smtpd_txn_reset(s);
	s->proto = SMTPD_PROTO_NONE;
	s->helo[0] = '\0';
	s->sasl_user[0] = '\0';
	s->sasl_method = NULL;
	return 0;
}

int
smtpd_tls_wrap(struct smtpd_stream *st, const char *name, const char *ip)
{
	if (smtpd_mode != SMTPD_MODE_SMTPS)
		return 0;
	if (server_ctx == NULL)
		log_panic("smtpd_tls_wrap: smtps without a TLS context");
	return handshake(st, name, ip);
}

void
smtpd_tls_end(struct smtpd_stream *st)
{
	if (st->tls == NULL)
		return;
	tls_close(st->tls);
	st->tls = NULL;
}
