/*
 * Unit tests for send/: the SMTP client against a scripted fake server.
 *
 * The fake server is a forked child listening on 127.0.0.1 (port 0).  It
 * follows a script of steps: read N lines (or a DATA body up to
 * "\r\n.\r\n"), then write a canned reply; or close.  Every byte it
 * receives is recorded in a file, which the test compares with the exact
 * bytes tern must send (CRLF only, dot-stuffing, pipelining order).  The
 * child is bounded by alarm() and always killed and reaped.
 *
 * Cases: pipelined 250/450/550 mix with dot-stuffing and CR handling;
 * no pipelining with a multi-line banner and BODY=8BITMIME; EHLO 5xx → HELO;
 * 5xx to MAIL; a dropped connection before and after "."; malformed
 * replies (bad code, mixed codes, 999, overlong line, NUL, "250-" then EOF);
 * a 421 greeting; connection refused; a banner that never comes (timeout);
 * SMTPUTF8 to a peer without it; and the content converter on its own.
 * Issue 6: connection reuse (two requests, one connection, no RSET after a completed transaction,
 * QUIT at the end), the reuse count limit, 8-bit → quoted-printable for a
 * peer without 8BITMIME (single part and multipart, exact bytes), DSN
 * parameters passed on / "relayed" without DSN, SIZE, the hop limit and
 * the per-command timeouts.
 * Hostile peers: a 421 at each stage (deferred, nothing sent after it), a
 * line sent after the reply to "." (the connection is not reused), bare-LF
 * replies and a CR inside a reply line, a peer that stops reading the
 * content (smtp_data_xfer_timeout), and 8-bit MIME nested 1000 deep for a
 * peer without 8BITMIME.  ACCEPT and SYNC steps let a script span two
 * connections and wait for the test.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../../send/send.h"
#include "conf.h"
#include "log.h"
#include "proto_deliver.h"

#define PREFIX "ENVELOPE\n"

/* ACCEPT: read the current connection to its EOF (recorded), close it and
 * take the next one.  SYNC: wait for the test's fake_sync() before writing
 * the reply, then tell it the reply is written. */
enum step_kind { LINES, BODY, CLOSE, END, ACCEPT, SYNC };

struct step {
	enum step_kind kind;
	int n;             /* LINES: lines to read first */
	const char *reply; /* written after reading (may be NULL) */
	size_t reply_len;  /* 0: strlen(reply) */
};

struct fake {
	pid_t pid;
	int port;
	char record[320];
};

static char workdir[64];
static int fake_rcvbuf; /* nonzero: the next fake's receive buffer size */

static void set_conf(const char *kv)
{
	char err[512];
	ck_assert_msg(conf_override(kv, err, sizeof(err)) == 0, "%s", err);
}

static void setup(void)
{
	log_open("test_send", LOG_TO_STDERR);
	conf_defaults();
	set_conf("myhostname=client.test");
	cf.smtp_connect_timeout = 5;
	cf.smtp_helo_timeout = cf.smtp_mail_timeout = cf.smtp_rcpt_timeout = 5;
	cf.smtp_data_init_timeout = cf.smtp_data_xfer_timeout = cf.smtp_data_done_timeout = 5;
	cf.smtp_quit_timeout = cf.smtp_rset_timeout = 5;
	snprintf(workdir, sizeof(workdir), "/tmp/tern-send.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(workdir));
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", workdir);
}

/* --- the fake server (runs in the child) --- */

static int rec_fd = -1;
static char inbuf[65536], recbuf[65536];
static size_t inpos, inlen, reclen;

static void rec_flush(void)
{
	if (reclen > 0 && write(rec_fd, recbuf, reclen) != (ssize_t)reclen)
		_exit(3);
	reclen = 0;
}

/* One byte from the client (buffered: replies never depend on bytes the
 * client has not sent yet, so reading ahead is harmless), recorded. */
static int getbyte(int fd, char *c)
{
	if (inpos == inlen) {
		ssize_t r = read(fd, inbuf, sizeof(inbuf));
		if (r <= 0)
			return 0;
		inpos = 0;
		inlen = (size_t)r;
	}
	*c = inbuf[inpos++];
	if (reclen == sizeof(recbuf))
		rec_flush();
	recbuf[reclen++] = *c;
	return 1;
}

static int read_lines(int fd, int n)
{
	char c;
	while (n > 0) {
		if (!getbyte(fd, &c))
			return -1;
		if (c == '\n')
			n--;
	}
	return 0;
}

static int read_body(int fd)
{
	/* the body starts right after "DATA\r\n": a lone ".\r\n" ends it too */
	char last[5] = { 0, 0, 0, '\r', '\n' };
	char c;
	for (;;) {
		if (!getbyte(fd, &c))
			return -1;
		memmove(last, last + 1, 4);
		last[4] = c;
		if (memcmp(last, "\r\n.\r\n", 5) == 0)
			return 0;
	}
}

static void sync_path(char *path, size_t size, const char *name)
{
	snprintf(path, size, "%s/sync.%s", workdir, name);
}

/* Wait (at most 10 s) until the file exists. */
static int wait_file(const char *path)
{
	for (int i = 0; i < 1000; i++) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

static int touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	return close(fd);
}

static void serve(int lfd, const struct step *steps)
{
	const struct step *s;
	char go[320], done[320];
	alarm(20);
	sync_path(go, sizeof(go), "go");
	sync_path(done, sizeof(done), "done");
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(2);
	for (s = steps; s->kind != END && s->kind != CLOSE; s++) {
		if (s->kind == ACCEPT) {
			char c;
			while (getbyte(fd, &c))
				;
			close(fd);
			inpos = inlen = 0;
			if ((fd = accept(lfd, NULL, NULL)) < 0)
				_exit(2);
			continue;
		}
		if (s->kind == SYNC && wait_file(go) < 0)
			break;
		if (s->kind == LINES && read_lines(fd, s->n) < 0)
			break;
		if (s->kind == BODY && read_body(fd) < 0)
			break;
		if (s->reply) {
			size_t n = s->reply_len ? s->reply_len : strlen(s->reply);
			if (write(fd, s->reply, n) != (ssize_t)n)
				break;
		}
		if (s->kind == SYNC) {
			usleep(100000); /* margin for loopback delivery; the client is idle meanwhile */
			if (touch(done) < 0)
				_exit(3);
		}
	}
	if (s->kind == END) { /* record whatever else comes, until EOF */
		char c;
		while (getbyte(fd, &c))
			;
	}
	rec_flush();
	close(fd);
	_exit(0);
}

static void fake_start(struct fake *f, const struct step *steps)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fake_rcvbuf > 0) /* before listen: accepted sockets inherit it */
		ck_assert_int_eq(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &fake_rcvbuf, sizeof(fake_rcvbuf)), 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	snprintf(f->record, sizeof(f->record), "%s/record.%d", workdir, f->port);
	rec_fd = open(f->record, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(rec_fd, 0);
	f->pid = fork();
	ck_assert_int_ge(f->pid, 0);
	if (f->pid == 0)
		serve(lfd, steps);
	close(lfd);
	close(rec_fd);
}

/* Let the fake's SYNC step write its reply; 0 once it has, -1 when it
 * did not within 10 s (it gave up waiting). */
static int fake_sync(void)
{
	char go[320], done[320];
	sync_path(go, sizeof(go), "go");
	sync_path(done, sizeof(done), "done");
	ck_assert_int_eq(touch(go), 0);
	return wait_file(done);
}

/* Reap the child (killing it after 10 s) and return what it received. */
static char *fake_finish(struct fake *f, size_t *len)
{
	int st;
	pid_t w = 0;
	for (int i = 0; i < 1000 && w == 0; i++) {
		w = waitpid(f->pid, &st, WNOHANG);
		if (w == 0)
			usleep(10000);
	}
	if (w == 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, &st, 0);
	}
	int fd = open(f->record, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);
	char *p = malloc((size_t)sb.st_size + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(read(fd, p, (size_t)sb.st_size), sb.st_size);
	p[sb.st_size] = '\0';
	close(fd);
	*len = (size_t)sb.st_size;
	return p;
}

/* --- the client side --- */

static int message_fd(const char *content, size_t len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/qf.XXXXXX", workdir);
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, PREFIX, strlen(PREFIX)), (ssize_t)strlen(PREFIX));
	ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
	return fd;
}

static void request(struct deliver_request *r, int port, size_t len)
{
	deliver_request_init(r);
	strcpy(r->queue_id, "SENDQ");
	strcpy(r->sender, "s@x.org");
	snprintf(r->nexthop, sizeof(r->nexthop), "[127.0.0.1]:%d", port);
	r->offset = strlen(PREFIX);
	r->length = len;
	r->arrival = (long long)time(NULL);
}

/* Run one delivery of content to rcpts against the script; returns the
 * bytes the server received. */
static char *deliver(const struct step *steps, struct deliver_request *r, const char *content, unsigned flags,
		     const char *const *rcpts, size_t nrcpt, size_t *len)
{
	struct fake f;
	fake_start(&f, steps);
	int fd = message_fd(content, strlen(content));
	request(r, f.port, strlen(content));
	r->flags = flags;
	for (size_t i = 0; i < nrcpt; i++)
		deliver_request_add(r, (unsigned)i, 0, rcpts[i]);
	send_deliver_request(r, fd);
	close(fd);
	return fake_finish(&f, len);
}

static void assert_result(const struct deliver_rcpt *rc, enum deliver_status st, const char *dsn, const char *text)
{
	ck_assert_msg(rc->status == st, "%s: status %d, want %d (%s)", rc->address, rc->status, st, rc->text);
	ck_assert_str_eq(rc->dsn, dsn);
	if (text)
		ck_assert_msg(strstr(rc->text, text) != NULL, "%s: \"%s\" lacks \"%s\"", rc->address, rc->text, text);
}

static const char *const three[] = { "a@y.test", "b@y.test", "c@y.test" };

START_TEST(test_pipelined_mix)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 fake ESMTP\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n", 0 },
		{ LINES, 5, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n450 4.2.0 <b@y.test>: busy\r\n"
			    "550 5.1.1 <c@y.test>: no such user\r\n354 go\r\n", 0 },
		{ BODY, 0, "250 2.0.0 Ok: queued as ABC\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	const char *content = "Subject: t\n\n.leading dot\n..two\nline\r\nbare\rcr\n.\nend";
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, content, 0, three, 3, &len);
	const char *want = "EHLO client.test\r\n"
			   "MAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
			   "Subject: t\r\n\r\n..leading dot\r\n...two\r\nline\r\nbare\r\ncr\r\n..\r\nend\r\n.\r\n"
			   "QUIT\r\n";
	ck_assert_str_eq(got, want);
	ck_assert_uint_eq(len, strlen(want));
	assert_result(&r.rcpt[0], DELIVER_OK, "2.0.0", "250 2.0.0 Ok: queued as ABC");
	assert_result(&r.rcpt[1], DELIVER_TEMP, "4.2.0", "127.0.0.1[127.0.0.1] said: 450 4.2.0 <b@y.test>: busy (in reply to RCPT TO command)");
	assert_result(&r.rcpt[2], DELIVER_PERM, "5.1.1", "said: 550 5.1.1 <c@y.test>: no such user");
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_no_pipelining_multiline_banner)
{
	static const struct step steps[] = {
		{ LINES, 0, "220-fake.example ESMTP\r\n220-more text\r\n220 last\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "550 5.7.1 relaying denied\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "354 go ahead\r\n", 0 },
		{ BODY, 0, "250 queued\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	static const char *const two[] = { "x@y.test", "z@y.test" };
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, "Subject: 8bit \xc3\xa9\n\nhello\n", DELIVER_F_8BITMIME, two, 2, &len);
	const char *want = "EHLO client.test\r\nMAIL FROM:<s@x.org> SIZE=24 BODY=8BITMIME\r\nRCPT TO:<x@y.test>\r\n"
			   "RCPT TO:<z@y.test>\r\nDATA\r\nSubject: 8bit \xc3\xa9\r\n\r\nhello\r\n.\r\nQUIT\r\n";
	ck_assert_str_eq(got, want);
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.7.1", "relaying denied (in reply to RCPT TO command)");
	assert_result(&r.rcpt[1], DELIVER_OK, "2.0.0", "250 queued");
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_all_rcpts_rejected_pipelined)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 3, "250 ok\r\n550 no\r\n554 no valid recipients\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	static const char *const one[] = { "a@y.test" };
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, "x\n", 0, one, 1, &len);
	ck_assert_str_eq(got, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nDATA\r\nQUIT\r\n");
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.0.0", "said: 550 no");
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_helo_fallback_and_mail_5xx)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 old server\r\n", 0 },
		{ LINES, 1, "502 5.5.1 what is EHLO\r\n", 0 },
		{ LINES, 1, "250 hello\r\n", 0 },
		{ LINES, 1, "553 5.1.8 sender rejected\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, "x\n", 0, three, 2, &len);
	ck_assert_str_eq(got, "EHLO client.test\r\nHELO client.test\r\nMAIL FROM:<s@x.org>\r\nQUIT\r\n");
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.1.8", "sender rejected (in reply to MAIL FROM command)");
	assert_result(&r.rcpt[1], DELIVER_PERM, "5.1.8", NULL);
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_dropped_before_data)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250 fake\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, NULL, 0 },
		{ CLOSE, 0, NULL, 0 },
		{ END, 0, NULL, 0 },
	};
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, "x\n", 0, three, 3, &len);
	ck_assert_str_eq(got, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\n");
	for (size_t i = 0; i < 3; i++)
		assert_result(&r.rcpt[i], DELIVER_TEMP, "4.4.2", "lost connection with 127.0.0.1[127.0.0.1] while sending RCPT TO");
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_dropped_after_dot)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 3, "250 ok\r\n250 ok\r\n354 go\r\n", 0 },
		{ BODY, 0, NULL, 0 },
		{ CLOSE, 0, NULL, 0 },
		{ END, 0, NULL, 0 },
	};
	static const char *const one[] = { "a@y.test" };
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, "hello\n", 0, one, 1, &len);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.4.2", "may be sent more than once");
	free(got);
	deliver_request_free(&r);
}
END_TEST

/* Each malformed EHLO reply defers every recipient with 4.5.0 and never crashes. */
START_TEST(test_malformed_replies)
{
	static const char *const bad[] = {
		"2x0 what\r\n",
		"250-first\r\n251 mixed\r\n",
		"999 nonsense\r\n",
		"25\r\n",
		"250_missing separator\r\n",
		"199 too low\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct step steps[] = {
			{ LINES, 0, "220 fake\r\n", 0 },
			{ LINES, 1, bad[i], 0 },
			{ CLOSE, 0, NULL, 0 },
			{ END, 0, NULL, 0 },
		};
		struct deliver_request r;
		size_t len;
		char *got = deliver(steps, &r, "x\n", 0, three, 2, &len);
		assert_result(&r.rcpt[0], DELIVER_TEMP, "4.5.0", "malformed reply");
		assert_result(&r.rcpt[1], DELIVER_TEMP, "4.5.0", NULL);
		free(got);
		deliver_request_free(&r);
	}
}
END_TEST

START_TEST(test_malformed_long_nul_eof)
{
	/* a 100 KB line */
	size_t big = 100000;
	char *longline = malloc(big + 3);
	ck_assert_ptr_nonnull(longline);
	memcpy(longline, "250 ", 4);
	memset(longline + 4, 'a', big - 4);
	memcpy(longline + big, "\r\n", 3);
	struct step s1[] = { { LINES, 0, "220 fake\r\n", 0 }, { LINES, 1, longline, 0 }, { CLOSE, 0, NULL, 0 }, { END, 0, NULL, 0 } };
	struct step s2[] = { { LINES, 0, "220 fake\r\n", 0 }, { LINES, 1, "250 a\0b\r\n", 9 }, { CLOSE, 0, NULL, 0 }, { END, 0, NULL, 0 } };
	struct step s3[] = { { LINES, 0, "220 fake\r\n", 0 }, { LINES, 1, "250-more to come\r\n", 0 }, { CLOSE, 0, NULL, 0 }, { END, 0, NULL, 0 } };
	struct step s4[] = { { LINES, 0, "220-fake\r\n", 0 }, { CLOSE, 0, NULL, 0 }, { END, 0, NULL, 0 } };
	struct {
		struct step *steps;
		const char *dsn, *text;
	} cases[] = {
		{ s1, "4.5.0", "malformed reply while performing the EHLO handshake" },
		{ s2, "4.5.0", "malformed" },
		{ s3, "4.4.2", "lost connection" },
		{ s4, "4.4.2", "while receiving the initial server greeting" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct deliver_request r;
		size_t len;
		char *got = deliver(cases[i].steps, &r, "x\n", 0, three, 1, &len);
		assert_result(&r.rcpt[0], DELIVER_TEMP, cases[i].dsn, cases[i].text);
		free(got);
		deliver_request_free(&r);
	}
	/* a reply of more than 100 lines */
	struct buf many;
	buf_init(&many, 1 << 20);
	for (int i = 0; i < 150; i++)
		ck_assert_int_eq(buf_puts(&many, "250-line\r\n"), 0);
	ck_assert_int_eq(buf_puts(&many, "250 end\r\n"), 0);
	struct step s5[] = { { LINES, 0, "220 fake\r\n", 0 }, { LINES, 1, many.data, 0 }, { CLOSE, 0, NULL, 0 }, { END, 0, NULL, 0 } };
	struct deliver_request r;
	size_t len;
	char *got = deliver(s5, &r, "x\n", 0, three, 1, &len);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.5.0", "malformed");
	free(got);
	deliver_request_free(&r);
	buf_free(&many);
	free(longline);
}
END_TEST

START_TEST(test_greeting_421_and_smtputf8)
{
	static const struct step s421[] = {
		{ LINES, 0, "421 4.3.2 too busy\r\n", 0 },
		{ CLOSE, 0, NULL, 0 },
		{ END, 0, NULL, 0 },
	};
	struct deliver_request r;
	size_t len;
	char *got = deliver(s421, &r, "x\n", 0, three, 1, &len);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.3.2", "said: 421 4.3.2 too busy (in reply to initial greeting)");
	ck_assert_str_eq(got, "");
	free(got);
	deliver_request_free(&r);

	static const struct step s554[] = {
		{ LINES, 0, "554 5.7.1 go away\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	got = deliver(s554, &r, "x\n", 0, three, 1, &len);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.7.1", "go away"); /* a 5xx greeting defers */
	ck_assert_str_eq(got, "QUIT\r\n");
	free(got);
	deliver_request_free(&r);

	static const struct step sutf[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 8BITMIME\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	got = deliver(sutf, &r, "x\n", DELIVER_F_SMTPUTF8, three, 1, &len);
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.6.7", "SMTPUTF8");
	ck_assert_str_eq(got, "EHLO client.test\r\nQUIT\r\n");
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_data_rejected)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 4, "250 ok\r\n250 ok\r\n250 ok\r\n554 5.6.0 no data for you\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, "x\n", 0, three, 2, &len);
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.6.0", "(in reply to DATA command)");
	assert_result(&r.rcpt[1], DELIVER_PERM, "5.6.0", NULL);
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_connection_refused)
{
	/* a port that was just free: bind, read the number, close */
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &slen), 0);
	close(s);
	int fd = message_fd("x\n", 2);
	struct deliver_request r;
	request(&r, ntohs(sin.sin_port), 2);
	deliver_request_add(&r, 0, 0, "a@y.test");
	send_deliver_request(&r, fd);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.4.1", "connect to 127.0.0.1[127.0.0.1]");
	deliver_request_free(&r);
	close(fd);
}
END_TEST

START_TEST(test_banner_timeout)
{
	static const struct step steps[] = {
		{ LINES, 1, NULL, 0 }, /* waits for a line that never comes */
		{ END, 0, NULL, 0 },
	};
	cf.smtp_helo_timeout = 1;
	struct deliver_request r;
	size_t len;
	time_t t0 = time(NULL);
	char *got = deliver(steps, &r, "x\n", 0, three, 1, &len);
	ck_assert_int_le(time(NULL) - t0, 5);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.4.2", "timed out while receiving the initial server greeting");
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_bad_nexthop_and_short_file)
{
	int fd = message_fd("x\n", 2);
	struct deliver_request r;
	request(&r, 25, 2);
	strcpy(r.nexthop, "[127.0.0.1]:99999");
	deliver_request_add(&r, 0, 0, "a@y.test");
	send_deliver_request(&r, fd);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.3.5", "nexthop");
	deliver_request_free(&r);

	request(&r, 25, 200);
	deliver_request_add(&r, 0, 0, "a@y.test");
	send_deliver_request(&r, fd);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.3.0", "queue file");
	deliver_request_free(&r);
	close(fd);
}
END_TEST

/* The converter alone, including a CR at a chunk boundary. */
START_TEST(test_data_convert)
{
	char out[64];
	int st = 0;
	size_t n = smtp_data_convert(".a\r", 3, out, &st);
	n += smtp_data_convert("\n.b\r", 4, out + n, &st);
	n += smtp_data_convert("c", 1, out + n, &st);
	n += smtp_data_finish(out + n, st);
	out[n] = '\0';
	ck_assert_str_eq(out, "..a\r\n..b\r\nc\r\n.\r\n");

	st = 0;
	n = smtp_data_convert("", 0, out, &st);
	n += smtp_data_finish(out + n, st);
	out[n] = '\0';
	ck_assert_str_eq(out, ".\r\n");

	st = 0;
	n = smtp_data_convert("a\r", 2, out, &st);
	n += smtp_data_finish(out + n, st);
	out[n] = '\0';
	ck_assert_str_eq(out, "a\r\n.\r\n");

	st = 0;
	n = smtp_data_convert("\r\r\n\n", 4, out, &st);
	n += smtp_data_finish(out + n, st);
	out[n] = '\0';
	ck_assert_str_eq(out, "\r\n\r\n\r\n.\r\n");
}
END_TEST

/* The conversion's rules one byte at a time: the model the converter is
 * checked against (a line end is LF, CR LF or a lone CR, sent as CR LF; a
 * line's leading dot is doubled; a CR at a chunk's end waits for the next
 * byte). */
static size_t model_convert(const char *in, size_t n, char *out, int *midline, int *cr)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = in[i];
		if (*cr) {
			out[o++] = '\r';
			out[o++] = '\n';
			*cr = *midline = 0;
			if (ch == '\n')
				continue;
		}
		if (ch == '\r') {
			*cr = 1;
		} else if (ch == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			*midline = 0;
		} else {
			if (!*midline && ch == '.')
				out[o++] = '.';
			out[o++] = ch;
			*midline = 1;
		}
	}
	return o;
}

/* Random texts of dots, line ends, NULs and letters, cut into random
 * chunks: the converter's output equals the model's, byte for byte. */
START_TEST(test_data_convert_model)
{
	static const char alphabet[] = { 'a', '.', '\r', '\n', 'x', '\0', '.', '\n' };
	static char in[512], got[1100], want[1100];
	unsigned seed = 12345;
	for (int round = 0; round < 3000; round++) {
		size_t len = (seed = seed * 1103515245u + 12345u) >> 16 & 511, g = 0, w = 0, pos = 0;
		int st = 0, midline = 0, cr = 0;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = (seed >> 16) % 5 == 0 ? 'a' + (char)((seed >> 20) % 26) : alphabet[(seed >> 16) % 8];
		}
		while (pos < len) {
			size_t take = 1 + ((seed = seed * 1103515245u + 12345u) >> 16) % 97;
			if (take > len - pos)
				take = len - pos;
			g += smtp_data_convert(in + pos, take, got + g, &st);
			pos += take;
		}
		g += smtp_data_finish(got + g, st);
		w = model_convert(in, len, want, &midline, &cr);
		if (cr || midline) {
			want[w++] = '\r';
			want[w++] = '\n';
		}
		memcpy(want + w, ".\r\n", 3);
		w += 3;
		ck_assert_msg(g == w && memcmp(got, want, w) == 0, "round %d: %zu bytes in, %zu out, want %zu", round,
			      len, g, w);
	}
}
END_TEST

START_TEST(test_large_body)
{
	/* 300 KB of ".x" lines: crosses chunk and buffer boundaries */
	static const struct step steps[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 3, "250 ok\r\n250 ok\r\n354 go\r\n", 0 },
		{ BODY, 0, "250 ok\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	size_t lines = 100000;
	char *content = malloc(lines * 3 + 1);
	ck_assert_ptr_nonnull(content);
	for (size_t i = 0; i < lines; i++)
		memcpy(content + 3 * i, ".x\n", 3);
	content[lines * 3] = '\0';
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, content, 0, three, 1, &len);
	assert_result(&r.rcpt[0], DELIVER_OK, "2.0.0", NULL);
	const char *head = "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nDATA\r\n";
	size_t hl = strlen(head);
	ck_assert_uint_eq(len, hl + lines * 5 + 3 + 6);
	ck_assert(memcmp(got, head, hl) == 0);
	for (size_t i = 0; i < lines; i++)
		ck_assert(memcmp(got + hl + 5 * i, "..x\r\n", 5) == 0);
	ck_assert(memcmp(got + hl + 5 * lines, ".\r\nQUIT\r\n", 9) == 0);
	free(got);
	free(content);
	deliver_request_free(&r);
}
END_TEST

/* A target for 127.0.0.1:port. */
static void add_target(struct send_targets *t, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&t->t[t->n].sa;
	memset(&t->t[t->n], 0, sizeof(t->t[t->n]));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons((unsigned short)port);
	t->t[t->n].salen = sizeof(*sin);
	snprintf(t->t[t->n].name, sizeof(t->t[t->n].name), "mx%zu.test", t->n + 1);
	t->n++;
}

static int refused_port(void)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &slen), 0);
	close(s);
	return ntohs(sin.sin_port);
}

/* Refused, then a 421 greeting, then a server that takes the message. */
START_TEST(test_next_address_after_failures)
{
	static const struct step busy[] = {
		{ LINES, 0, "421 4.3.2 busy\r\n", 0 },
		{ CLOSE, 0, NULL, 0 },
		{ END, 0, NULL, 0 },
	};
	static const struct step good[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 4, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", 0 },
		{ BODY, 0, "250 2.0.0 taken\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	struct fake f1, f2;
	struct send_targets *t = calloc(1, sizeof(*t));
	ck_assert_ptr_nonnull(t);
	fake_start(&f1, busy);
	fake_start(&f2, good);
	add_target(t, refused_port());
	add_target(t, f1.port);
	add_target(t, f2.port);
	int fd = message_fd("x\n", 2);
	struct deliver_request r;
	request(&r, 0, 2);
	deliver_request_add(&r, 0, 0, "a@y.test");
	deliver_request_add(&r, 1, 0, "b@y.test");
	send_deliver_to(&r, fd, t);
	size_t l1, l2;
	char *g1 = fake_finish(&f1, &l1);
	char *g2 = fake_finish(&f2, &l2);
	ck_assert_str_eq(g1, "");
	ck_assert_str_eq(g2, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\n"
			     "DATA\r\nx\r\n.\r\nQUIT\r\n");
	assert_result(&r.rcpt[0], DELIVER_OK, "2.0.0", "250 2.0.0 taken");
	assert_result(&r.rcpt[1], DELIVER_OK, "2.0.0", NULL);
	free(g1);
	free(g2);
	free(t);
	close(fd);
	deliver_request_free(&r);
}
END_TEST

/* A 4xx to one RCPT is final; the accepted one is retried at the next
 * address when the first drops the connection during the content. */
/* The most a TCP send buffer grows to by itself (the third field of
 * tcp_wmem); 4 MiB when it cannot be read. */
static size_t tcp_wmem_max(void)
{
	size_t lo, def, max = 4u << 20;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
	if (f) {
		if (fscanf(f, "%zu %zu %zu", &lo, &def, &max) != 3 || max > (1u << 30))
			max = 4u << 20;
		fclose(f);
	}
	return max;
}

START_TEST(test_retry_only_unanswered)
{
	static const struct step drop[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 4, "250 ok\r\n451 4.3.0 try later\r\n250 ok\r\n354 go\r\n", 0 },
		{ CLOSE, 0, NULL, 0 }, /* hang up instead of reading the content */
		{ END, 0, NULL, 0 },
	};
	static const struct step good[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250 fake\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "354 go\r\n", 0 },
		{ BODY, 0, "250 done\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	/* The client must still be writing when the peer's reset arrives, so
	 * the "." is never sent: the content is more than the client's send
	 * buffer can ever grow to (tcp_wmem's maximum) plus the fake's small
	 * receive buffer.  A fixed 1 MiB fitted in the buffers of a fast
	 * client, which then finished before the fake hung up. */
	size_t big = (tcp_wmem_max() + (1u << 20)) / 64 * 64;
	char *content = malloc(big + 1);
	ck_assert_ptr_nonnull(content);
	for (size_t i = 0; i < big; i++)
		content[i] = (i % 64 == 63) ? '\n' : 'z';
	content[big] = '\0';
	struct fake f1, f2;
	struct send_targets *t = calloc(1, sizeof(*t));
	ck_assert_ptr_nonnull(t);
	fake_rcvbuf = 4096;
	fake_start(&f1, drop);
	fake_rcvbuf = 0;
	fake_start(&f2, good);
	add_target(t, f1.port);
	add_target(t, f2.port);
	int fd = message_fd(content, big);
	struct deliver_request r;
	request(&r, 0, big);
	deliver_request_add(&r, 0, 0, "a@y.test");
	deliver_request_add(&r, 1, 0, "b@y.test");
	send_deliver_to(&r, fd, t);
	size_t l1, l2;
	char *g1 = fake_finish(&f1, &l1);
	char *g2 = fake_finish(&f2, &l2);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.3.0", "mx1.test[127.0.0.1] said: 451 4.3.0 try later");
	assert_result(&r.rcpt[1], DELIVER_OK, "2.0.0", "250 done");
	const char *head2 = "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n";
	ck_assert(strncmp(g2, head2, strlen(head2)) == 0);
	ck_assert_uint_eq(l2, strlen(head2) + big / 64 * 65 + 3 + 6);
	free(g1);
	free(g2);
	free(t);
	free(content);
	close(fd);
	deliver_request_free(&r);
}
END_TEST


/* Two requests for the same nexthop in one process go over ONE connection
 * (the fake accepts exactly once: a second connection would never get a
 * greeting): no RSET after a completed transaction, QUIT when the qmgr
 * connection ends. */
START_TEST(test_reuse_one_connection)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 3, "250 ok\r\n250 ok\r\n354 go\r\n", 0 },
		{ BODY, 0, "250 2.0.0 first\r\n", 0 },
		{ LINES, 3, "250 ok\r\n250 ok\r\n354 go\r\n", 0 },
		{ BODY, 0, "250 2.0.0 second\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	struct fake f;
	struct deliver_request r1, r2;
	fake_start(&f, steps);
	int fd1 = message_fd("one\n", 4), fd2 = message_fd("two\n", 4);
	request(&r1, f.port, 4);
	deliver_request_add(&r1, 0, 0, "a@y.test");
	request(&r2, f.port, 4);
	strcpy(r2.queue_id, "SENDQ2");
	deliver_request_add(&r2, 0, 0, "b@y.test");
	send_reuse_begin();
	send_deliver_request(&r1, fd1);
	ck_assert(send_reuse_cached());
	send_deliver_request(&r2, fd2);
	ck_assert(send_reuse_cached());
	send_reuse_end();
	ck_assert(!send_reuse_cached());
	size_t len;
	char *got = fake_finish(&f, &len);
	ck_assert_str_eq(got, "EHLO client.test\r\n"
			      "MAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nDATA\r\none\r\n.\r\n"
			      "MAIL FROM:<s@x.org>\r\nRCPT TO:<b@y.test>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n");
	assert_result(&r1.rcpt[0], DELIVER_OK, "2.0.0", "250 2.0.0 first");
	assert_result(&r2.rcpt[0], DELIVER_OK, "2.0.0", "250 2.0.0 second");
	ck_assert_str_eq(r2.rcpt[0].mta, "127.0.0.1");
	free(got);
	close(fd1);
	close(fd2);
	deliver_request_free(&r1);
	deliver_request_free(&r2);
}
END_TEST

/* With smtp_connection_reuse_count_limit = 1 nothing is kept. */
START_TEST(test_reuse_count_limit)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250 fake\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "354 go\r\n", 0 },
		{ BODY, 0, "250 2.0.0 ok\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	cf.smtp_connection_reuse_count_limit = 1;
	send_reuse_begin();
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, "x\n", 0, three, 1, &len);
	ck_assert(!send_reuse_cached());
	send_reuse_end();
	ck_assert_str_eq(got, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	free(got);
	deliver_request_free(&r);
}
END_TEST

static const struct step plain_peer[] = { /* no 8BITMIME, no PIPELINING */
	{ LINES, 0, "220 fake\r\n", 0 },
	{ LINES, 1, "250 fake\r\n", 0 },
	{ LINES, 1, "250 ok\r\n", 0 },
	{ LINES, 1, "250 ok\r\n", 0 },
	{ LINES, 1, "354 go\r\n", 0 },
	{ BODY, 0, "250 2.0.0 ok\r\n", 0 },
	{ LINES, 1, "221 bye\r\n", 0 },
	{ END, 0, NULL, 0 },
};

static const char *body_of(const char *wire)
{
	const char *b = strstr(wire, "DATA\r\n");
	ck_assert_ptr_nonnull(b);
	return b + 6;
}

/* Every line ends in CRLF (no bare CR or LF) and is at most max octets. */
static void assert_crlf_lines(const char *p, size_t max)
{
	const char *line = p;
	for (; *p; p++) {
		if (*p == '\r')
			ck_assert_msg(p[1] == '\n', "bare CR at offset %zu", (size_t)(p - line));
		if (*p == '\n') {
			ck_assert_msg(p > line && p[-1] == '\r', "bare LF");
			ck_assert_msg((size_t)(p - 1 - line) <= max, "line of %zu octets", (size_t)(p - 1 - line));
			line = p + 1;
		}
	}
}

START_TEST(test_qp_single_part)
{
	const char *content = "Subject: x\nContent-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9 = ok \n.dot\ttab\t\nend";
	struct deliver_request r;
	size_t len;
	char *got = deliver(plain_peer, &r, content, DELIVER_F_8BITMIME, three, 1, &len);
	ck_assert_str_eq(body_of(got), "Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n"
				       "\r\ncaf=C3=A9 =3D ok=20\r\n..dot\ttab=09\r\nend\r\n.\r\nQUIT\r\n");
	ck_assert(strstr(got, "BODY=8BITMIME") == NULL);
	assert_result(&r.rcpt[0], DELIVER_OK, "2.0.0", NULL);
	free(got);
	deliver_request_free(&r);

	/* a 7-bit message to the same peer goes byte for byte */
	got = deliver(plain_peer, &r, "Subject: y\n\na = b \n", 0, three, 1, &len);
	ck_assert_str_eq(body_of(got), "Subject: y\r\n\r\na = b \r\n.\r\nQUIT\r\n");
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_qp_multipart)
{
	char content[4096], want[8192];
	char eacute[121];
	for (int i = 0; i < 60; i++)
		memcpy(eacute + 2 * i, "\xc3\xa9", 2);
	eacute[120] = '\0';
	snprintf(content, sizeof(content),
		 "MIME-Version: 1.0\nContent-Type: multipart/mixed;\n boundary=\"BB\"\n\npre\n"
		 "--BB\nContent-Type: text/plain\n\nascii only\n"
		 "--BB\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n%s\n"
		 "--BB\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAAA\n"
		 "--BB--\nepi\n",
		 eacute);
	/* 120 bytes → 120 "=XX" tokens, 25 per line of 75 + "=" */
	char enc[1024];
	size_t o = 0;
	for (int i = 0; i < 120; i++) {
		if (i > 0 && i % 25 == 0)
			o += (size_t)snprintf(enc + o, sizeof(enc) - o, "=\r\n");
		o += (size_t)snprintf(enc + o, sizeof(enc) - o, "%s", i % 2 ? "=A9" : "=C3");
	}
	snprintf(want, sizeof(want),
		 "MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"BB\"\r\n\r\npre\r\n"
		 "--BB\r\nContent-Type: text/plain\r\n\r\nascii only\r\n"
		 "--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n"
		 "--BB\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
		 "--BB--\r\nepi\r\n.\r\nQUIT\r\n",
		 enc);
	struct deliver_request r;
	size_t len;
	char *got = deliver(plain_peer, &r, content, 0, three, 1, &len);
	ck_assert_str_eq(body_of(got), want);
	assert_crlf_lines(got, 76);
	free(got);
	deliver_request_free(&r);
}
END_TEST

static const struct step dsn_peer[] = {
	{ LINES, 0, "220 fake\r\n", 0 },
	{ LINES, 1, "250-fake\r\n250-DSN\r\n250 PIPELINING\r\n", 0 },
	{ LINES, 4, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", 0 },
	{ BODY, 0, "250 2.0.0 ok\r\n", 0 },
	{ LINES, 1, "221 bye\r\n", 0 },
	{ END, 0, NULL, 0 },
};

static const struct step nodsn_peer[] = {
	{ LINES, 0, "220 fake\r\n", 0 },
	{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
	{ LINES, 4, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", 0 },
	{ BODY, 0, "250 2.0.0 ok\r\n", 0 },
	{ LINES, 1, "221 bye\r\n", 0 },
	{ END, 0, NULL, 0 },
};

static char *deliver_dsn(const struct step *steps, struct deliver_request *r)
{
	struct fake f;
	size_t len;
	fake_start(&f, steps);
	int fd = message_fd("x\n", 2);
	request(r, f.port, 2);
	r->flags = DELIVER_F_RET_HDRS;
	strcpy(r->envid, "ID+1 x");
	struct deliver_rcpt *rc = deliver_request_add(r, 0, NOTIFY_SUCCESS | NOTIFY_FAILURE, "a@y.test");
	strcpy(rc->orcpt, "rfc822;a+2Bb@y.test");
	deliver_request_add(r, 1, 0, "b@y.test");
	send_deliver_request(r, fd);
	close(fd);
	return fake_finish(&f, &len);
}

START_TEST(test_dsn_passed_on)
{
	struct deliver_request r;
	char *got = deliver_dsn(dsn_peer, &r);
	ck_assert_str_eq(got, "EHLO client.test\r\nMAIL FROM:<s@x.org> RET=HDRS ENVID=ID+2B1+20x\r\n"
			      "RCPT TO:<a@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@y.test\r\n"
			      "RCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	assert_result(&r.rcpt[0], DELIVER_OK, "2.0.0", NULL);
	ck_assert_str_eq(r.rcpt[0].mta, "127.0.0.1");
	free(got);
	deliver_request_free(&r);
}
END_TEST

/* Without DSN at the peer: no DSN parameters, and NOTIFY=SUCCESS → relayed. */
START_TEST(test_no_dsn_relayed)
{
	struct deliver_request r;
	char *got = deliver_dsn(nodsn_peer, &r);
	ck_assert_str_eq(got, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\n"
			      "RCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	assert_result(&r.rcpt[0], DELIVER_RELAYED, "2.0.0", NULL);
	assert_result(&r.rcpt[1], DELIVER_OK, "2.0.0", NULL);
	struct buf b;
	buf_init(&b, 1 << 20);
	ck_assert_int_eq(deliver_encode_response(&r, &b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "result 0 relayed 2.0.0 127.0.0.1 "));
	buf_free(&b);
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_size_limit)
{
	static const struct step steps[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 SIZE 10\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	struct deliver_request r;
	size_t len;
	char *got = deliver(steps, &r, "0123456789abcdef\n", 0, three, 1, &len);
	ck_assert_str_eq(got, "EHLO client.test\r\nQUIT\r\n");
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.3.4", "message size 17 exceeds size limit 10 of server");
	free(got);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_hop_limit)
{
	int port = refused_port();
	cf.hopcount_limit = 2;
	const char *three_hops = "Received: from a\nreceived : from b\n\tcontinued\nRECEIVED: from c\nSubject: x\n\nReceived: body\n";
	int fd = message_fd(three_hops, strlen(three_hops));
	struct deliver_request r;
	request(&r, port, strlen(three_hops));
	deliver_request_add(&r, 0, 0, "a@y.test");
	send_deliver_request(&r, fd);
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.4.6", "too many hops (3 Received: headers, limit 2)");
	close(fd);
	deliver_request_free(&r);
	/* two is not too many: the delivery is attempted (and refused) */
	const char *two = "Received: from a\nReceived: from b\n\nReceived: body\nReceived: body\n";
	fd = message_fd(two, strlen(two));
	request(&r, port, strlen(two));
	deliver_request_add(&r, 0, 0, "a@y.test");
	send_deliver_request(&r, fd);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.4.1", "Connection refused");
	close(fd);
	deliver_request_free(&r);
}
END_TEST

/* smtp_rcpt_timeout and smtp_data_done_timeout apply to their stage. */
START_TEST(test_command_timeouts)
{
	static const struct step stall_rcpt[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250 fake\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, NULL, 0 },
		{ LINES, 1, NULL, 0 }, /* never comes */
		{ END, 0, NULL, 0 },
	};
	static const struct step stall_dot[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250 fake\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "250 ok\r\n", 0 },
		{ LINES, 1, "354 go\r\n", 0 },
		{ BODY, 0, NULL, 0 },
		{ LINES, 1, NULL, 0 },
		{ END, 0, NULL, 0 },
	};
	struct deliver_request r;
	size_t len;
	cf.smtp_rcpt_timeout = 1;
	time_t t0 = time(NULL);
	char *got = deliver(stall_rcpt, &r, "x\n", 0, three, 1, &len);
	ck_assert_int_le(time(NULL) - t0, 3);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.4.2", "timed out while sending RCPT TO");
	free(got);
	deliver_request_free(&r);
	cf.smtp_rcpt_timeout = 5;
	cf.smtp_data_done_timeout = 1;
	t0 = time(NULL);
	got = deliver(stall_dot, &r, "x\n", 0, three, 1, &len);
	ck_assert_int_le(time(NULL) - t0, 3);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.4.2", "conversation timed out with");
	free(got);
	deliver_request_free(&r);
}
END_TEST

/*
 * D.21: a 421 at each stage.  421 means the server is closing the
 * connection: every open recipient is deferred (never bounced) with the
 * reply and the command it answered, and nothing more is written (no QUIT:
 * the fake records until EOF, so a QUIT would show).
 */
START_TEST(test_421_each_stage)
{
#define BYE "421 4.3.2 bye\r\n"
#define EHLO_PIPE "250-fake\r\n250 PIPELINING\r\n"
#define ENVELOPE2 "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
	static const struct step ehlo[] = { { LINES, 0, "220 fake\r\n", 0 }, { LINES, 1, BYE, 0 }, { END, 0, NULL, 0 } };
	static const struct step helo[] = {
		{ LINES, 0, "220 fake\r\n", 0 }, { LINES, 1, "502 5.5.1 what\r\n", 0 }, { LINES, 1, BYE, 0 }, { END, 0, NULL, 0 },
	};
	/* level may: a 421 to STARTTLS is not a refusal to go on in plaintext */
	static const struct step starttls[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 STARTTLS\r\n", 0 },
		{ LINES, 1, BYE, 0 },
		{ END, 0, NULL, 0 },
	};
	static const struct step mail[] = {
		{ LINES, 0, "220 fake\r\n", 0 }, { LINES, 1, EHLO_PIPE, 0 }, { LINES, 4, BYE, 0 }, { END, 0, NULL, 0 },
	};
	static const struct step mail1[] = { /* without PIPELINING */
		{ LINES, 0, "220 fake\r\n", 0 }, { LINES, 1, "250 fake\r\n", 0 }, { LINES, 1, BYE, 0 }, { END, 0, NULL, 0 },
	};
	static const struct step rcpt[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, EHLO_PIPE, 0 },
		{ LINES, 4, "250 ok\r\n250 ok\r\n" BYE, 0 },
		{ END, 0, NULL, 0 },
	};
	static const struct step data[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, EHLO_PIPE, 0 },
		{ LINES, 4, "250 ok\r\n250 ok\r\n250 ok\r\n" BYE, 0 },
		{ END, 0, NULL, 0 },
	};
	static const struct step dot[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, EHLO_PIPE, 0 },
		{ LINES, 4, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", 0 },
		{ BODY, 0, BYE, 0 },
		{ END, 0, NULL, 0 },
	};
	static const struct {
		const struct step *steps;
		const char *wire, *cmd;
	} cases[] = {
		{ ehlo, "EHLO client.test\r\n", "(in reply to EHLO command)" },
		{ helo, "EHLO client.test\r\nHELO client.test\r\n", "(in reply to HELO command)" },
		{ starttls, "EHLO client.test\r\nSTARTTLS\r\n", "(in reply to STARTTLS command)" },
		{ mail, ENVELOPE2, "(in reply to MAIL FROM command)" },
		{ mail1, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\n", "(in reply to MAIL FROM command)" },
		{ rcpt, ENVELOPE2, "(in reply to RCPT TO command)" },
		{ data, ENVELOPE2, "(in reply to DATA command)" },
		{ dot, ENVELOPE2 "x\r\n.\r\n", "(in reply to end of DATA command)" },
	};
	cf.smtp_quit_timeout = 1; /* a wrong QUIT costs a second, not five */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct deliver_request r;
		size_t len;
		char text[200];
		char *got = deliver(cases[i].steps, &r, "x\n", 0, three, 2, &len);
		ck_assert_msg(strcmp(got, cases[i].wire) == 0, "case %zu: sent \"%s\"", i, got);
		snprintf(text, sizeof(text), "127.0.0.1[127.0.0.1] said: 421 4.3.2 bye %s", cases[i].cmd);
		assert_result(&r.rcpt[0], DELIVER_TEMP, "4.3.2", text);
		assert_result(&r.rcpt[1], DELIVER_TEMP, "4.3.2", text);
		free(got);
		deliver_request_free(&r);
	}

	/* Every RCPT refused, then 421 to the pipelined DATA: the refusals
	 * stand, and the closing connection still gets no QUIT. */
	static const struct step none_data[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, EHLO_PIPE, 0 },
		{ LINES, 4, "250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n" BYE, 0 },
		{ END, 0, NULL, 0 },
	};
	struct deliver_request r;
	size_t len;
	char *got = deliver(none_data, &r, "x\n", 0, three, 2, &len);
	ck_assert_str_eq(got, ENVELOPE2);
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.1.1", "said: 550 5.1.1 no (in reply to RCPT TO command)");
	assert_result(&r.rcpt[1], DELIVER_PERM, "5.1.1", NULL);
	free(got);
	deliver_request_free(&r);

	/* MAIL refused with PIPELINING: the replies to the RCPTs and DATA sent
	 * with it are read and dropped, but a 421 among them still ends the
	 * session (even when the peer answers on after it). */
	static const struct step mail_drain[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, EHLO_PIPE, 0 },
		{ LINES, 4, "553 5.1.8 sender no\r\n" BYE "503 5.5.1 no\r\n554 5.5.1 no\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	got = deliver(mail_drain, &r, "x\n", 0, three, 2, &len);
	ck_assert_str_eq(got, ENVELOPE2);
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.1.8", "said: 553 5.1.8 sender no (in reply to MAIL FROM command)");
	assert_result(&r.rcpt[1], DELIVER_PERM, "5.1.8", NULL);
	free(got);
	deliver_request_free(&r);

	/* 421 for the second RCPT after a 550 for the first: the 550 is
	 * final, the other recipient deferred. */
	static const struct step mixed[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, EHLO_PIPE, 0 },
		{ LINES, 4, "250 ok\r\n550 5.1.1 no\r\n" BYE, 0 },
		{ END, 0, NULL, 0 },
	};
	got = deliver(mixed, &r, "x\n", 0, three, 2, &len);
	ck_assert_str_eq(got, ENVELOPE2);
	assert_result(&r.rcpt[0], DELIVER_PERM, "5.1.1", "said: 550 5.1.1 no");
	assert_result(&r.rcpt[1], DELIVER_TEMP, "4.3.2", "said: 421 4.3.2 bye (in reply to RCPT TO command)");
	free(got);
	deliver_request_free(&r);
#undef BYE
#undef EHLO_PIPE
#undef ENVELOPE2
}
END_TEST

/*
 * D.22: a line the peer sends after its reply to "." answers no command.
 * Left in the input of a kept connection it would be read as the reply to
 * the next MAIL and shift every later reply by one (a 250 read as the
 * reply to DATA bounces the message).  A connection with unread input is
 * closed, not reused: the second request goes over a new connection.  The
 * extra line comes with the reply (read ahead with it), and, in the second
 * round, only after the first request is over (seen when the kept
 * connection is taken).  The fake takes the second connection only after
 * the first reached EOF, so the wire shows what went over which.
 */
START_TEST(test_unsolicited_line_not_reused)
{
#define HEAD "220 fake\r\n", 0 }, { LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 }, { LINES, 3, "250 ok\r\n250 ok\r\n354 go\r\n"
	static const struct step same_packet[] = {
		{ LINES, 0, HEAD, 0 },
		{ BODY, 0, "250 2.0.0 first\r\n250 2.0.0 extra\r\n", 0 },
		{ ACCEPT, 0, NULL, 0 },
		{ LINES, 0, HEAD, 0 },
		{ BODY, 0, "250 2.0.0 second\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	static const struct step later[] = {
		{ LINES, 0, HEAD, 0 },
		{ BODY, 0, "250 2.0.0 first\r\n", 0 },
		{ SYNC, 0, "250 2.0.0 extra\r\n", 0 },
		{ ACCEPT, 0, NULL, 0 },
		{ LINES, 0, HEAD, 0 },
		{ BODY, 0, "250 2.0.0 second\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
#undef HEAD
	const struct step *scripts[] = { same_packet, later };
	cf.smtp_mail_timeout = cf.smtp_rcpt_timeout = 1; /* a shifted reply waits for nothing */
	for (size_t i = 0; i < 2; i++) {
		struct fake f;
		struct deliver_request r1, r2;
		fake_start(&f, scripts[i]);
		int fd1 = message_fd("one\n", 4), fd2 = message_fd("two\n", 4);
		request(&r1, f.port, 4);
		deliver_request_add(&r1, 0, 0, "a@y.test");
		request(&r2, f.port, 4);
		strcpy(r2.queue_id, "SENDQ2");
		deliver_request_add(&r2, 0, 0, "b@y.test");
		send_reuse_begin();
		send_deliver_request(&r1, fd1);
		if (scripts[i] == later)
			ck_assert_int_eq(fake_sync(), 0);
		send_deliver_request(&r2, fd2);
		send_reuse_end();
		size_t len;
		char *got = fake_finish(&f, &len);
		ck_assert_msg(strcmp(got, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nDATA\r\none\r\n.\r\n"
				     "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<b@y.test>\r\nDATA\r\ntwo\r\n.\r\n"
				     "QUIT\r\n") == 0,
			      "round %zu: sent \"%s\"", i, got);
		assert_result(&r1.rcpt[0], DELIVER_OK, "2.0.0", "250 2.0.0 first");
		assert_result(&r2.rcpt[0], DELIVER_OK, "2.0.0", "250 2.0.0 second");
		free(got);
		close(fd1);
		close(fd2);
		deliver_request_free(&r1);
		deliver_request_free(&r2);
		char path[320];
		sync_path(path, sizeof(path), "go");
		unlink(path);
		sync_path(path, sizeof(path), "done");
		unlink(path);
	}
}
END_TEST

/*
 * D.22: reply line ends.  A bare LF ends a reply line (Postfix's smtp_get
 * accepts it too: refusing would only defer mail to sloppy servers, and a
 * reply cannot smuggle anything).  A CR inside a line is text: it reaches
 * the result, the DSN and the log only as '?'.
 */
START_TEST(test_reply_bare_lf_and_cr)
{
	static const struct step lf[] = {
		{ LINES, 0, "220 fake\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\n", 0 },
		{ LINES, 4, "250 ok\n250 ok\n250 ok\n354 go\n", 0 },
		{ BODY, 0, "250 2.0.0 lf ok\n", 0 },
		{ LINES, 1, "221 bye\n", 0 },
		{ END, 0, NULL, 0 },
	};
	struct deliver_request r;
	size_t len;
	char *got = deliver(lf, &r, "x\n", 0, three, 2, &len);
	ck_assert_str_eq(got, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\n"
			      "DATA\r\nx\r\n.\r\nQUIT\r\n");
	assert_result(&r.rcpt[0], DELIVER_OK, "2.0.0", "250 2.0.0 lf ok");
	assert_result(&r.rcpt[1], DELIVER_OK, "2.0.0", "250 2.0.0 lf ok");
	free(got);
	deliver_request_free(&r);

	static const struct step cr[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 4, "250 ok\r\n250 ok\r\n550 5.1.1 no\rX-Forged: yes\r\n354 go\r\n", 0 },
		{ BODY, 0, "250 2.0.0 ok\rinjected\r\r\n", 0 },
		{ LINES, 1, "221 bye\r\n", 0 },
		{ END, 0, NULL, 0 },
	};
	got = deliver(cr, &r, "x\n", 0, three, 2, &len);
	assert_result(&r.rcpt[0], DELIVER_OK, "2.0.0", "250 2.0.0 ok?injected?");
	assert_result(&r.rcpt[1], DELIVER_PERM, "5.1.1", "said: 550 5.1.1 no?X-Forged: yes (in reply to RCPT TO command)");
	for (size_t i = 0; i < 2; i++)
		ck_assert_ptr_null(strpbrk(r.rcpt[i].text, "\r\n"));
	free(got);
	deliver_request_free(&r);

	/* The reply layer itself (the result setter sanitises once more). */
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const char *wire = "250-a\rb\r\n250 c\n";
	ck_assert_int_eq(write(sv[1], wire, strlen(wire)), (ssize_t)strlen(wire));
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	struct smtp_conn c;
	struct smtp_reply rep;
	char text[64];
	smtp_conn_init(&c, sv[0], 1000);
	smtp_reply_init(&rep);
	ck_assert_int_eq(smtp_read_reply(&c, &rep), SMTP_REPLY_OK);
	ck_assert_uint_eq(rep.nlines, 2);
	smtp_reply_text(&rep, text, sizeof(text));
	ck_assert_str_eq(text, "250 a?b c");
	smtp_reply_free(&rep);
	smtp_conn_free(&c);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/*
 * D.23: a peer that stops reading the content (a closed receive window).
 * smtp_data_xfer_timeout bounds each flush of the output buffer, so the
 * writer gives up one timeout after the window closed and defers; the
 * content is more than every buffer between the two can hold, as in
 * test_retry_only_unanswered.
 */
START_TEST(test_data_xfer_timeout_stalled_peer)
{
	static const struct step stall[] = {
		{ LINES, 0, "220 fake\r\n", 0 },
		{ LINES, 1, "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ LINES, 3, "250 ok\r\n250 ok\r\n354 go\r\n", 0 },
		{ SYNC, 0, NULL, 0 }, /* reads nothing until the test is done */
		{ END, 0, NULL, 0 },
	};
	size_t big = (tcp_wmem_max() + (1u << 20)) / 64 * 64;
	char *content = malloc(big + 1);
	ck_assert_ptr_nonnull(content);
	for (size_t i = 0; i < big; i++)
		content[i] = (i % 64 == 63) ? '\n' : 'z';
	content[big] = '\0';
	cf.smtp_data_xfer_timeout = 1;
	struct fake f;
	fake_rcvbuf = 4096;
	fake_start(&f, stall);
	fake_rcvbuf = 0;
	int fd = message_fd(content, big);
	struct deliver_request r;
	request(&r, f.port, big);
	deliver_request_add(&r, 0, 0, "a@y.test");
	send_deliver_request(&r, fd);
	int synced = fake_sync();
	size_t len;
	char *got = fake_finish(&f, &len);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.4.2",
		      "conversation with 127.0.0.1[127.0.0.1] timed out while sending message body");
	ck_assert_int_eq(synced, 0);
	ck_assert_uint_lt(len, big); /* the "." was never sent */
	free(got);
	free(content);
	close(fd);
	deliver_request_free(&r);
}
END_TEST

/* got equals want; a failure shows where they part (the whole strings
 * would be too long for Check's messages). */
static void assert_same(const char *got, const char *want)
{
	size_t i = 0;
	while (got[i] && got[i] == want[i])
		i++;
	ck_assert_msg(got[i] == want[i], "differs at byte %zu: \"%.40s\" instead of \"%.40s\"", i, got + i, want + i);
}

/* One line into the stored content (LF) and into the expected wire (CRLF). */
static void both_line(struct buf *content, struct buf *wire, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void both_line(struct buf *content, struct buf *wire, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ck_assert(n >= 0 && (size_t)n < sizeof(line));
	ck_assert_int_eq(buf_printf(content, "%s\n", line), 0);
	ck_assert_int_eq(buf_printf(wire, "%s\r\n", line), 0);
}

/*
 * B.14: 1000-deep MIME nesting to a peer without 8BITMIME.  The converter
 * keeps no per-level state (one pass, fixed memory): as send_mime.c
 * documents, a part of the top-level multipart that is itself a multipart
 * passes byte for byte, however deep it goes, while a sibling 8-bit text
 * part is converted.  Then a top-level multipart with 1100 8-bit parts:
 * parts past the MIME_MAX_ENT'th (1000 entities, the message included)
 * pass unchanged, the ones before are converted.
 */
START_TEST(test_qp_deep_nesting)
{
	static const int depths[] = { 2, 1000 };
	struct buf content, wire;
	struct deliver_request r;
	size_t len;
	char *got;
	buf_init(&content, 1 << 20);
	buf_init(&wire, 1 << 20);
	for (size_t k = 0; k < sizeof(depths) / sizeof(depths[0]); k++) {
		buf_reset(&content);
		buf_reset(&wire);
		both_line(&content, &wire, "MIME-Version: 1.0");
		both_line(&content, &wire, "Content-Type: multipart/mixed; boundary=\"b0\"");
		both_line(&content, &wire, "%s", "");
		both_line(&content, &wire, "--b0");
		both_line(&content, &wire, "Content-Type: text/plain; charset=utf-8");
		ck_assert_int_eq(buf_puts(&content, "Content-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9 top\n"), 0);
		ck_assert_int_eq(buf_puts(&wire, "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 top\r\n"), 0);
		both_line(&content, &wire, "--b0");
		for (int d = 1; d <= depths[k]; d++) {
			both_line(&content, &wire, "Content-Type: multipart/mixed; boundary=\"b%d\"", d);
			both_line(&content, &wire, "%s", "");
			both_line(&content, &wire, "--b%d", d);
		}
		both_line(&content, &wire, "Content-Type: text/plain; charset=utf-8");
		both_line(&content, &wire, "Content-Transfer-Encoding: 8bit");
		both_line(&content, &wire, "%s", "");
		both_line(&content, &wire, "deep \xc3\xa9");
		for (int d = depths[k]; d >= 0; d--)
			both_line(&content, &wire, "--b%d--", d);
		ck_assert_int_eq(buf_puts(&wire, ".\r\nQUIT\r\n"), 0);
		got = deliver(plain_peer, &r, content.data, DELIVER_F_8BITMIME, three, 1, &len);
		assert_same(body_of(got), wire.data);
		assert_result(&r.rcpt[0], DELIVER_OK, "2.0.0", NULL);
		free(got);
		deliver_request_free(&r);
	}

	buf_reset(&content);
	buf_reset(&wire);
	both_line(&content, &wire, "MIME-Version: 1.0");
	both_line(&content, &wire, "Content-Type: multipart/mixed; boundary=\"bb\"");
	both_line(&content, &wire, "%s", "");
	for (int part = 1; part <= 1100; part++) {
		both_line(&content, &wire, "--bb");
		ck_assert_int_eq(buf_puts(&content, "\n\xe9\n"), 0);
		ck_assert_int_eq(buf_puts(&wire, part < 1000 ? "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n"
							     : "\r\n\xe9\r\n"), 0);
	}
	both_line(&content, &wire, "--bb--");
	ck_assert_int_eq(buf_puts(&wire, ".\r\nQUIT\r\n"), 0);
	got = deliver(plain_peer, &r, content.data, DELIVER_F_8BITMIME, three, 1, &len);
	assert_same(body_of(got), wire.data);
	free(got);
	deliver_request_free(&r);
	buf_free(&content);
	buf_free(&wire);
}
END_TEST

static Suite *send_suite(void)
{
	Suite *s = suite_create("send_smtp");
	TCase *tc = tcase_create("smtp");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pipelined_mix);
	tcase_add_test(tc, test_no_pipelining_multiline_banner);
	tcase_add_test(tc, test_all_rcpts_rejected_pipelined);
	tcase_add_test(tc, test_helo_fallback_and_mail_5xx);
	tcase_add_test(tc, test_dropped_before_data);
	tcase_add_test(tc, test_dropped_after_dot);
	tcase_add_test(tc, test_malformed_replies);
	tcase_add_test(tc, test_malformed_long_nul_eof);
	tcase_add_test(tc, test_greeting_421_and_smtputf8);
	tcase_add_test(tc, test_data_rejected);
	tcase_add_test(tc, test_connection_refused);
	tcase_add_test(tc, test_banner_timeout);
	tcase_add_test(tc, test_bad_nexthop_and_short_file);
	tcase_add_test(tc, test_data_convert);
	tcase_add_test(tc, test_data_convert_model);
	tcase_add_test(tc, test_large_body);
	tcase_add_test(tc, test_next_address_after_failures);
	tcase_add_test(tc, test_retry_only_unanswered);
	tcase_add_test(tc, test_reuse_one_connection);
	tcase_add_test(tc, test_reuse_count_limit);
	tcase_add_test(tc, test_qp_single_part);
	tcase_add_test(tc, test_qp_multipart);
	tcase_add_test(tc, test_dsn_passed_on);
	tcase_add_test(tc, test_no_dsn_relayed);
	tcase_add_test(tc, test_size_limit);
	tcase_add_test(tc, test_hop_limit);
	tcase_add_test(tc, test_command_timeouts);
	tcase_add_test(tc, test_421_each_stage);
	tcase_add_test(tc, test_unsolicited_line_not_reused);
	tcase_add_test(tc, test_reply_bare_lf_and_cr);
	tcase_add_test(tc, test_data_xfer_timeout_stalled_peer);
	tcase_add_test(tc, test_qp_deep_nesting);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(send_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
