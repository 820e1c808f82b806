/*
 * fix_smtp.c — the fake SMTP server and client-side helpers of the send/
 * unit tests (interface and use: fix_smtp.h).
 *
 * The fake server is a forked child listening on 127.0.0.1 (port 0).  It
 * follows a script of steps: read N lines (or a DATA body up to
 * "\r\n.\r\n"), then write a canned reply; or close.  Every byte it
 * receives is recorded in a file, which the test compares with the exact
 * bytes tern must send (CRLF only, dot-stuffing, pipelining order).  The
 * child is bounded by alarm() and always killed and reaped.  ACCEPT and
 * SYNC steps let a script span two connections and wait for the test.
 */
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "fix_smtp.h"
#include "log.h"
#include "testutil.h"

char workdir[64];
int fake_rcvbuf;

void set_conf(const char *kv)
{
	char err[512];
	ck_assert_msg(conf_override(kv, err, sizeof(err)) == 0, "%s", err);
}

void setup(void)
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

void teardown(void)
{
	test_rm_rf(workdir);
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

void fake_start(struct fake *f, const struct step *steps)
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

int fake_sync(void)
{
	char go[320], done[320];
	sync_path(go, sizeof(go), "go");
	sync_path(done, sizeof(done), "done");
	ck_assert_int_eq(touch(go), 0);
	return wait_file(done);
}

void fake_sync_reset(void)
{
	char path[320];
	sync_path(path, sizeof(path), "go");
	unlink(path);
	sync_path(path, sizeof(path), "done");
	unlink(path);
}

char *fake_finish(struct fake *f, size_t *len)
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
	return test_slurp(f->record, len);
}

/* --- the client side --- */

int message_fd(const char *content, size_t len)
{
	return test_message_fd(workdir, PREFIX, content, len);
}

void request(struct deliver_request *r, int port, size_t len)
{
	deliver_request_init(r);
	strcpy(r->queue_id, "SENDQ");
	strcpy(r->sender, "s@x.org");
	snprintf(r->nexthop, sizeof(r->nexthop), "[127.0.0.1]:%d", port);
	r->offset = strlen(PREFIX);
	r->length = len;
	r->arrival = (long long)time(NULL);
}

char *deliver(const struct step *steps, struct deliver_request *r, const char *content, unsigned flags,
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

void assert_result(const struct deliver_rcpt *rc, enum deliver_status st, const char *dsn, const char *text)
{
	ck_assert_msg(rc->status == st, "%s: status %d, want %d (%s)", rc->address, rc->status, st, rc->text);
	ck_assert_str_eq(rc->dsn, dsn);
	if (text)
		ck_assert_msg(strstr(rc->text, text) != NULL, "%s: \"%s\" lacks \"%s\"", rc->address, rc->text, text);
}

const char *const three[] = { "a@y.test", "b@y.test", "c@y.test" };

void add_target(struct send_targets *t, int port)
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

int refused_port(void)
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

/* The most a TCP send buffer grows to by itself (the third field of
 * tcp_wmem); 4 MiB when it cannot be read. */
static size_t tcp_wmem_max(void)
{
	size_t lo, def, max = 4u << 20;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
	if (f) {
		/* NOLINTNEXTLINE(cert-err34-c): a value that does not convert or is over 1 GiB falls back to 4 MiB */
		if (fscanf(f, "%zu %zu %zu", &lo, &def, &max) != 3 || max > (1u << 30))
			max = 4u << 20;
		fclose(f);
	}
	return max;
}

/* 64-byte lines, 1 MiB more than the client's send buffer can ever grow
 * to: with the fake's receive buffer set small, the client is still
 * writing the content when the fake stops reading or hangs up. */
char *big_content(size_t *len)
{
	size_t big = (tcp_wmem_max() + (1u << 20)) / 64 * 64;
	char *content = malloc(big + 1);
	ck_assert_ptr_nonnull(content);
	for (size_t i = 0; i < big; i++)
		content[i] = (i % 64 == 63) ? '\n' : 'z';
	content[big] = '\0';
	*len = big;
	return content;
}

const struct step plain_peer[] = {
	{ LINES, 0, "220 fake\r\n", 0 },
	{ LINES, 1, "250 fake\r\n", 0 },
	{ LINES, 1, "250 ok\r\n", 0 },
	{ LINES, 1, "250 ok\r\n", 0 },
	{ LINES, 1, "354 go\r\n", 0 },
	{ BODY, 0, "250 2.0.0 ok\r\n", 0 },
	{ LINES, 1, "221 bye\r\n", 0 },
	{ END, 0, NULL, 0 },
};

const char *body_of(const char *wire)
{
	const char *b = strstr(wire, "DATA\r\n");
	ck_assert_ptr_nonnull(b);
	return b + 6;
}
