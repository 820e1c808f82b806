/*
 * smtpd_harness.h — scripted SMTP clients for the smtpd unit tests.
 *
 * A struct fake is the other end of a session: a list of input "packets"
 * (what the client sends before it waits for an answer) and a record of
 * everything the server wrote.  The server's stream reads one packet at a
 * time, so a packet boundary is exactly where a real pipelining client
 * would block; each stream flush is one write call, recorded in `marked`
 * with a '|' after it, so tests can assert how replies were batched.
 *
 * Only static functions, each marked unused, so every test file can include
 * it and use what it needs.
 */
#ifndef TERN_TEST_SMTPD_HARNESS_H
#define TERN_TEST_SMTPD_HARNESS_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../smtpd/smtpd.h"
#include "buf.h"
#include "conf.h"
#include "log.h"
#include "qfile.h"

#define H_UNUSED __attribute__((unused))
#define FAKE_MAX_PACKETS 4096

struct fake {
	struct buf pkt[FAKE_MAX_PACKETS];
	size_t npkt;
	size_t cur, pos;        /* reading position */
	int timeout_at_end;     /* after the last packet: ETIMEDOUT instead of EOF */
	int fail_writes;        /* writes fail with EPIPE */
	struct buf out;         /* everything written */
	struct buf marked;      /* the same, '|' after each write call */
	unsigned reads;         /* read calls */
	char ip[64];
};

H_UNUSED static ssize_t
fake_read(void *ctx, void *p, size_t n, int timeout_ms)
{
	struct fake *f = ctx;
	struct buf *b;
	size_t take;

	f->reads++;
	if (f->cur >= f->npkt) {
		if (f->timeout_at_end) {
			errno = ETIMEDOUT;
			return -1;
		}
		return 0;
	}
	b = &f->pkt[f->cur];
	take = b->len - f->pos;
	if (take > n)
		take = n;
	memcpy(p, b->data + f->pos, take);
	f->pos += take;
	if (f->pos == b->len) {
		f->cur++;
		f->pos = 0;
	}
	return (ssize_t)take;
}

H_UNUSED static ssize_t
fake_write(void *ctx, const void *p, size_t n, int timeout_ms)
{
	struct fake *f = ctx;

	if (f->fail_writes) {
		errno = EPIPE;
		return -1;
	}
	ck_assert_int_eq(buf_append(&f->out, p, n), 0);
	ck_assert_int_eq(buf_append(&f->marked, p, n), 0);
	ck_assert_int_eq(buf_putc(&f->marked, '|'), 0);
	return (ssize_t)n;
}

H_UNUSED static struct fake *
fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	buf_init(&f->out, 64 * 1024 * 1024);
	buf_init(&f->marked, 64 * 1024 * 1024);
	strcpy(f->ip, "192.0.2.10"); /* TEST-NET-1: not in mynetworks */
	return f;
}

H_UNUSED static void
fake_free(struct fake *f)
{
	size_t i;

	for (i = 0; i < f->npkt; i++)
		buf_free(&f->pkt[i]);
	buf_free(&f->out);
	buf_free(&f->marked);
	free(f);
}

/* One packet of n bytes (may hold NULs). */
H_UNUSED static void
fake_send(struct fake *f, const void *p, size_t n)
{
	ck_assert_uint_lt(f->npkt, FAKE_MAX_PACKETS);
	buf_init(&f->pkt[f->npkt], n + 1);
	ck_assert_int_eq(buf_append(&f->pkt[f->npkt], p, n), 0);
	f->npkt++;
}

/* A string literal as one packet (sizeof keeps embedded NULs). */
#define SEND(f, lit) fake_send((f), (lit), sizeof(lit) - 1)

H_UNUSED static void
fake_sends(struct fake *f, const char *s)
{
	fake_send(f, s, strlen(s));
}

/* Run a whole session against the script. */
H_UNUSED static void
fake_run(struct fake *f)
{
	struct smtpd_stream st;

	stream_init(&st, fake_read, fake_write, f, 1000);
	smtpd_session_run(&st, f->ip, "unknown");
	stream_free(&st);
}

/* The server's output after the greeting line. */
H_UNUSED static const char *
after_greeting(const struct fake *f)
{
	const char *nl = strstr(f->out.data, "\r\n");

	ck_assert_ptr_nonnull(nl);
	return nl + 2;
}

/* ---- configuration and queue ---- */

static char h_queue_dir[256];

H_UNUSED static void
h_conf(const char *const *overrides)
{
	char err[512];
	size_t i;

	conf_defaults();
	ck_assert_msg(conf_override("myhostname=mx.test", err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(conf_override("mydestination=$myhostname, localhost, example.org", err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_msg(conf_override("relay_domains=relay.example", err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(conf_override("mynetworks=127.0.0.0/8, [::1]/128, 10.0.0.0/8", err, sizeof(err)) == 0,
		      "%s", err);
	if (h_queue_dir[0] != '\0') {
		char kv[300];

		snprintf(kv, sizeof(kv), "queue_directory=%s", h_queue_dir);
		ck_assert_msg(conf_override(kv, err, sizeof(err)) == 0, "%s", err);
	}
	/* Every local name exists (virtual mailboxes) unless a test says otherwise. */
	ck_assert_msg(conf_override("local_mailbox_base=/nonexistent/tern-test-mail", err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_msg(conf_override("alias_maps=", err, sizeof(err)) == 0, "%s", err);
	/* No DNS in unit tests. */
	ck_assert_msg(conf_override("smtpd_peername_lookup=no", err, sizeof(err)) == 0, "%s", err);
	for (i = 0; overrides != NULL && overrides[i] != NULL; i++)
		ck_assert_msg(conf_override(overrides[i], err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(conf_finish(err, sizeof(err)) == 0, "%s", err);
	smtpd_init();
}

H_UNUSED static void
h_setup(void)
{
	log_open("test_smtpd", LOG_TO_STDERR);
	h_queue_dir[0] = '\0';
	h_conf(NULL);
}

H_UNUSED static void
h_setup_queue(void)
{
	log_open("test_smtpd", LOG_TO_STDERR);
	strcpy(h_queue_dir, "/tmp/tern-smtpd-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(h_queue_dir));
	h_conf(NULL);
	ck_assert_int_eq(qf_make_dirs(h_queue_dir), 0);
}

H_UNUSED static void
h_teardown_queue(void)
{
	char cmd[400];

	if (h_queue_dir[0] != '\0' && strncmp(h_queue_dir, "/tmp/tern-smtpd-test-", 21) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h_queue_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", h_queue_dir);
	}
	h_queue_dir[0] = '\0';
}

/* Number of entries in queue_dir/sub (not counting . and ..). */
H_UNUSED static int
h_count_files(const char *sub)
{
	char cmd[400];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s/%s' | wc -l", h_queue_dir, sub);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

/* The queue ID from the n-th (0-based) "queued as" reply, into qid. */
H_UNUSED static int
h_queued_id(const struct fake *f, int nth, char qid[QUEUEID_SIZE])
{
	const char *p = f->out.data;

	for (;;) {
		p = strstr(p, "250 2.0.0 Ok: queued as ");
		if (p == NULL)
			return -1;
		p += strlen("250 2.0.0 Ok: queued as ");
		if (nth-- == 0)
			break;
	}
	memcpy(qid, p, QUEUEID_LEN);
	qid[QUEUEID_LEN] = '\0';
	return queueid_valid(qid) ? 0 : -1;
}

/* Read incoming/QID: its envelope into *e and its content into *content. */
H_UNUSED static void
h_read_queued(const char *qid, struct qf_envelope *e, struct buf *content)
{
	char path[512], err[256];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/incoming/%s", h_queue_dir, qid);
	fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	/* qf_read initialises *e itself. */
	ck_assert_msg(qf_read(fd, e, err, sizeof(err)) == 0, "qf_read: %s", err);
	buf_reset(content);
	ck_assert_uint_le(e->content_len, content->max);
	{
		char *tmp = malloc(e->content_len + 1);

		ck_assert_ptr_nonnull(tmp);
		r = pread(fd, tmp, e->content_len, (off_t)e->content_off);
		ck_assert_int_eq(r, (ssize_t)e->content_len);
		ck_assert_int_eq(buf_append(content, tmp, (size_t)r), 0);
		free(tmp);
	}
	close(fd);
}

/* The content after tern's Received: header (which is 3 lines long). */
H_UNUSED static const char *
h_body_after_received(const struct buf *content)
{
	const char *p = content->data;
	int lines = 0;

	ck_assert_msg(strncmp(p, "Received: from ", 15) == 0, "content starts: %.40s", p);
	while (lines < 3) {
		p = strchr(p, '\n');
		ck_assert_ptr_nonnull(p);
		p++;
		lines++;
	}
	return p;
}

#endif
