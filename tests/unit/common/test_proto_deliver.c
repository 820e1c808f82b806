/*
 * test_proto_deliver — the delivery protocol: exact encoding, round trips,
 * and rejection of every malformed variant (each line missing, repeated,
 * swapped or preceded by junk; every truncation; trailing bytes; bad
 * numbers, control characters, overlong lines, too many recipients), plus
 * descriptor passing over a socketpair with deliver_read_request.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proto_deliver.h"
#include "sock.h"

static const char good1[] = "tern-deliver 1\n"
			    "queue_id 4AbC123\n"
			    "sender \n"
			    "nexthop example.com\n"
			    "offset 120\n"
			    "length 5000\n"
			    "arrival 1700000000\n"
			    "flags 3\n"
			    "envid \n"
			    "rcpt 0 6 - \"a b\"@example.com\n"
			    "end\n";

static void make_request(struct deliver_request *r)
{
	deliver_request_init(r);
	strcpy(r->queue_id, "4AbC123");
	strcpy(r->nexthop, "example.com");
	r->offset = 120;
	r->length = 5000;
	r->arrival = 1700000000;
	r->flags = DELIVER_F_8BITMIME | DELIVER_F_SMTPUTF8;
	deliver_request_add(r, 0, NOTIFY_FAILURE | NOTIFY_DELAY, "\"a b\"@example.com");
}

static int decode(const char *text, size_t n)
{
	struct deliver_request r;
	char err[256];
	int rc;

	deliver_request_init(&r);
	rc = deliver_decode_request(text, n, &r, err, sizeof(err));
	if (rc < 0)
		ck_assert_uint_eq(r.nrcpt, 0); /* nothing half-decoded is left */
	deliver_request_free(&r);
	return rc;
}

static int decode_str(const char *text)
{
	return decode(text, strlen(text));
}

START_TEST(test_encode_exact)
{
	struct deliver_request r;
	struct buf out;

	make_request(&r);
	buf_init(&out, 1 << 20);
	ck_assert_int_eq(deliver_encode_request(&r, &out), 0);
	ck_assert_str_eq(out.data, good1);
	deliver_request_free(&r);
	buf_free(&out);
}
END_TEST

START_TEST(test_round_trip)
{
	struct deliver_request r, d;
	struct buf out;
	char err[256];

	make_request(&r);
	strcpy(r.sender, "s@example.org");
	strcpy(r.envid, "QQ314159 x");
	r.flags = DELIVER_F_RET_HDRS;
	for (unsigned i = 1; i < DELIVER_MAX_RCPT; i++) {
		char a[64];
		snprintf(a, sizeof(a), "user%u@example.com", i);
		deliver_request_add(&r, i * 3, i % 2 ? NOTIFY_NEVER : NOTIFY_SUCCESS, a);
	}
	buf_init(&out, DELIVER_MAX_REQUEST);
	ck_assert_int_eq(deliver_encode_request(&r, &out), 0);
	deliver_request_init(&d);
	ck_assert_msg(deliver_decode_request(out.data, out.len, &d, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(d.queue_id, r.queue_id);
	ck_assert_str_eq(d.sender, "s@example.org");
	ck_assert_str_eq(d.nexthop, r.nexthop);
	ck_assert_str_eq(d.envid, "QQ314159 x");
	ck_assert_uint_eq(d.offset, 120);
	ck_assert_uint_eq(d.length, 5000);
	ck_assert_int_eq(d.arrival, 1700000000);
	ck_assert_uint_eq(d.flags, DELIVER_F_RET_HDRS);
	ck_assert_uint_eq(d.nrcpt, DELIVER_MAX_RCPT);
	for (size_t i = 0; i < d.nrcpt; i++) {
		ck_assert_uint_eq(d.rcpt[i].idx, r.rcpt[i].idx);
		ck_assert_uint_eq(d.rcpt[i].notify, r.rcpt[i].notify);
		ck_assert_str_eq(d.rcpt[i].address, r.rcpt[i].address);
	}

	/* the agent answers; the queue manager decodes into its request */
	for (size_t i = 0; i < d.nrcpt; i++) {
		if (i % 3 == 0)
			deliver_set_result(&d.rcpt[i], DELIVER_OK, "2.0.0", "250 2.0.0 Ok: queued as %zu", i);
		else if (i % 3 == 1)
			deliver_set_result(&d.rcpt[i], DELIVER_TEMP, "4.4.1", "connect to mx: timed out");
		else
			deliver_set_result(&d.rcpt[i], DELIVER_PERM, "5.1.1", "%s", "");
	}
	ck_assert_int_eq(deliver_encode_response(&d, &out), 0);
	ck_assert_msg(deliver_decode_response(out.data, out.len, &r, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_OK);
	ck_assert_str_eq(r.rcpt[0].dsn, "2.0.0");
	ck_assert_str_eq(r.rcpt[0].text, "250 2.0.0 Ok: queued as 0");
	ck_assert_int_eq(r.rcpt[1].status, DELIVER_TEMP);
	ck_assert_str_eq(r.rcpt[1].text, "connect to mx: timed out");
	ck_assert_int_eq(r.rcpt[2].status, DELIVER_PERM);
	ck_assert_str_eq(r.rcpt[2].dsn, "5.1.1");
	ck_assert_str_eq(r.rcpt[2].text, "");
	deliver_request_free(&r);
	deliver_request_free(&d);
	buf_free(&out);
}
END_TEST

/* Line i of good1 (with its LF), into out. */
static size_t nth_line(int i, const char **start)
{
	const char *p = good1;

	for (; i > 0; i--)
		p = strchr(p, '\n') + 1;
	*start = p;
	return (size_t)(strchr(p, '\n') + 1 - p);
}

#define NLINES 11

static void append_line(char *buf, int i)
{
	const char *l;
	size_t n = nth_line(i, &l);

	strncat(buf, l, n);
}

START_TEST(test_line_mutations)
{
	char buf[2048];
	const char *l;
	size_t n;

	ck_assert_int_eq(decode_str(good1), 0);
	for (int i = 0; i < NLINES; i++) {
		/* line i missing */
		buf[0] = '\0';
		for (int j = 0; j < NLINES; j++)
			if (j != i)
				append_line(buf, j);
		ck_assert_msg(decode_str(buf) < 0, "missing line %d accepted", i);
		/* line i repeated */
		buf[0] = '\0';
		for (int j = 0; j < NLINES; j++) {
			n = nth_line(j, &l);
			strncat(buf, l, n);
			if (j == i)
				strncat(buf, l, n);
		}
		ck_assert_msg(decode_str(buf) < 0, "repeated line %d accepted", i);
		/* lines i and i+1 swapped */
		if (i + 1 < NLINES) {
			buf[0] = '\0';
			for (int j = 0; j < NLINES; j++) {
				int k = j == i ? i + 1 : j == i + 1 ? i : j;
				append_line(buf, k);
			}
			ck_assert_msg(decode_str(buf) < 0, "swapped lines %d/%d accepted", i, i + 1);
		}
		/* an unknown line before line i */
		buf[0] = '\0';
		for (int j = 0; j < NLINES; j++) {
			if (j == i)
				strcat(buf, "color blue\n");
			append_line(buf, j);
		}
		ck_assert_msg(decode_str(buf) < 0, "junk line before %d accepted", i);
	}
}
END_TEST

START_TEST(test_truncated_and_trailing)
{
	char buf[2048];
	size_t n = strlen(good1);

	for (size_t i = 0; i < n; i++)
		ck_assert_msg(decode(good1, i) < 0, "prefix of %zu bytes accepted", i);
	static const char *tails[] = { "x", "\n", "end\n", " ", "\0" };
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		memcpy(buf, good1, n);
		memcpy(buf + n, tails[i], strlen(tails[i]) + 1);
		ck_assert_msg(decode(buf, n + (tails[i][0] ? strlen(tails[i]) : 1)) < 0, "trailing %zu", i);
	}
}
END_TEST

/* good1 with the line starting with name replaced by repl (a full line). */
static int decode_with(const char *name, const char *repl)
{
	char buf[8192];
	const char *p = strstr(good1, name);
	size_t pre = (size_t)(p - good1);
	const char *after = strchr(p, '\n') + 1;

	memcpy(buf, good1, pre);
	strcpy(buf + pre, repl);
	strcat(buf, after);
	return decode_str(buf);
}

START_TEST(test_field_values)
{
	/* sanity: the replacement helper itself keeps a good request good */
	ck_assert_int_eq(decode_with("offset", "offset 0\n"), 0);
	ck_assert_int_eq(decode_with("flags", "flags 7\n"), 0);
	ck_assert_int_eq(decode_with("rcpt", "rcpt 4294967295 8 - u@d\n"), 0);
	ck_assert_int_eq(decode_with("rcpt", "rcpt 1 2 rfc822;u+2Bx@d u@d\n"), 0);
	ck_assert_int_eq(decode_with("envid", "envid abc DEF+2B\n"), 0);
	ck_assert_int_eq(decode_with("sender", "sender \xc3\xa6@d\n"), 0);

	static const char *bad[][2] = {
		{ "tern-deliver", "tern-deliver 2\n" },
		{ "tern-deliver", "tern-deliver 01\n" },
		{ "tern-deliver", "tern-deliver  1\n" },
		{ "queue_id", "queue_id \n" },
		{ "queue_id", "queue_id ab-c\n" },
		{ "queue_id", "queue_id ../x\n" },
		{ "queue_id", "queue_id 0123456789012345678901234567890123\n" },
		{ "sender", "sender a\rb@d\n" },
		{ "sender", "sender a\tb@d\n" },
		{ "sender", "sender a\x7f@d\n" },
		{ "sender", "sender\n" },
		{ "nexthop", "nexthop \n" },
		{ "nexthop", "nexthop a b\n" },
		{ "offset", "offset -1\n" },
		{ "offset", "offset +1\n" },
		{ "offset", "offset 01\n" },
		{ "offset", "offset 1a\n" },
		{ "offset", "offset \n" },
		{ "offset", "offset 9223372036854775808\n" },
		{ "length", "length 99999999999999999999\n" },
		{ "arrival", "arrival -5\n" },
		{ "flags", "flags 8\n" },
		{ "envid", "envid \xc3\xa6\n" },
		{ "envid", "envid a\x01\n" },
		{ "envid",
		  "envid 01234567890123456789012345678901234567890123456789"
		  "012345678901234567890123456789012345678901234567890\n" },
		{ "rcpt", "rcpt 0 6 - \n" },
		{ "rcpt", "rcpt 0 6 -\n" },
		{ "rcpt", "rcpt 0 6 u@d\n" },          /* no orcpt field */
		{ "rcpt", "rcpt 0 6  u@d\n" },         /* empty orcpt */
		{ "rcpt", "rcpt 0 6 a\x01b u@d\n" },  /* control char in orcpt */
		{ "rcpt", "rcpt 0 16 - u@d\n" },
		{ "rcpt", "rcpt 0 9 - u@d\n" },
		{ "rcpt", "rcpt x 0 - u@d\n" },
		{ "rcpt", "rcpt -1 0 - u@d\n" },
		{ "rcpt", "rcpt 4294967296 0 - u@d\n" },
		{ "rcpt", "rcpt 0 6 - u@d\nrcpt 0 2 - v@d\n" },
		{ "rcpt", "rcpt  0 6 - u@d\n" },
		{ "rcpt", "RCPT 0 6 - u@d\n" },
		{ "end", "end \n" },
		{ "end", "END\n" },
		{ "end", "end\r\n" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(decode_with(bad[i][0], bad[i][1]) < 0, "accepted: %s", bad[i][1]);
}
END_TEST

START_TEST(test_limits)
{
	size_t cap = DELIVER_MAX_REQUEST + 100000;
	char *buf = malloc(cap), *p;
	const char *rc = strstr(good1, "rcpt");
	size_t pre = (size_t)(rc - good1);

	/* DELIVER_MAX_RCPT recipients pass, one more does not */
	for (int extra = 0; extra < 2; extra++) {
		memcpy(buf, good1, pre);
		p = buf + pre;
		for (int i = 0; i < DELIVER_MAX_RCPT + extra; i++)
			p += sprintf(p, "rcpt %d 0 - u%d@d\n", i, i);
		strcpy(p, "end\n");
		ck_assert_int_eq(decode_str(buf), extra ? -1 : 0);
	}
	/* no recipients at all */
	memcpy(buf, good1, pre);
	strcpy(buf + pre, "end\n");
	ck_assert_int_eq(decode_str(buf), -1);
	/* an overlong sender line */
	memcpy(buf, good1, 30);
	strcpy(buf, "tern-deliver 1\nqueue_id 4AbC123\nsender ");
	p = buf + strlen(buf);
	memset(p, 'a', 3000);
	strcpy(p + 3000, "@d\n");
	strcat(buf, strstr(good1, "nexthop"));
	ck_assert_int_eq(decode_str(buf), -1);
	/* an address one byte over ADDR_SIZE - 1 */
	memcpy(buf, good1, pre);
	p = buf + pre + sprintf(buf + pre, "rcpt 0 0 - ");
	memset(p, 'a', ADDR_SIZE);
	strcpy(p + ADDR_SIZE, "\nend\n");
	ck_assert_int_eq(decode_str(buf), -1);
	/* a 10 MB request without newlines is refused quickly */
	memset(buf, 'x', cap - 1);
	buf[cap - 1] = '\0';
	ck_assert_int_eq(decode(buf, cap - 1), -1);
	free(buf);
}
END_TEST

START_TEST(test_encode_rejects)
{
	struct deliver_request r;
	struct buf out;

	buf_init(&out, 1 << 20);
	make_request(&r);
	strcpy(r.sender, "a\nX-Injected: yes");
	ck_assert_int_eq(deliver_encode_request(&r, &out), -1);
	strcpy(r.sender, "");
	strcpy(r.queue_id, "a/b");
	ck_assert_int_eq(deliver_encode_request(&r, &out), -1);
	strcpy(r.queue_id, "ABC");
	strcpy(r.nexthop, "");
	ck_assert_int_eq(deliver_encode_request(&r, &out), -1);
	strcpy(r.nexthop, "a b");
	ck_assert_int_eq(deliver_encode_request(&r, &out), -1);
	strcpy(r.nexthop, "[10.0.0.1]:25");
	r.rcpt[0].notify = NOTIFY_NEVER | NOTIFY_SUCCESS;
	ck_assert_int_eq(deliver_encode_request(&r, &out), -1);
	r.rcpt[0].notify = 0;
	r.flags = 8;
	ck_assert_int_eq(deliver_encode_request(&r, &out), -1);
	r.flags = 0;
	strcpy(r.envid, "\xc3\xa6");
	ck_assert_int_eq(deliver_encode_request(&r, &out), -1);
	strcpy(r.envid, "");
	ck_assert_int_eq(deliver_encode_request(&r, &out), 0);
	/* out too small */
	struct buf small;
	buf_init(&small, 20);
	ck_assert_int_eq(deliver_encode_request(&r, &small), -1);
	buf_free(&small);

	/* responses: DSN class must agree with the status, text must be clean */
	deliver_set_result(&r.rcpt[0], DELIVER_OK, "4.0.0", "x");
	ck_assert_int_eq(deliver_encode_response(&r, &out), -1);
	deliver_set_result(&r.rcpt[0], DELIVER_OK, "2.0", "x");
	ck_assert_int_eq(deliver_encode_response(&r, &out), -1);
	deliver_set_result(&r.rcpt[0], DELIVER_OK, "2.0.0", "x");
	strcpy(r.rcpt[0].text, "a\nb");
	ck_assert_int_eq(deliver_encode_response(&r, &out), -1);
	deliver_set_result(&r.rcpt[0], DELIVER_PERM, "5.7.1", "x");
	ck_assert_int_eq(deliver_encode_response(&r, &out), 0);
	ck_assert_str_eq(out.data, "tern-result 1\nresult 0 perm 5.7.1 - x\nend\n");
	deliver_request_free(&r);
	buf_free(&out);
}
END_TEST

START_TEST(test_set_result_sanitises)
{
	struct deliver_rcpt rc;
	char big[3000];

	deliver_set_result(&rc, DELIVER_TEMP, "4.4.2", "lost\r\nconnection\x01 %d", 5);
	ck_assert_str_eq(rc.text, "lost??connection? 5");
	ck_assert_str_eq(rc.dsn, "4.4.2");
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	deliver_set_result(&rc, DELIVER_TEMP, "4.4.2", "%s", big);
	ck_assert_uint_eq(strlen(rc.text), DELIVER_MAX_TEXT - 1);
	deliver_set_result(&rc, DELIVER_TEMP, "4.4.2.12345678901234567890", "x");
	ck_assert_str_eq(rc.dsn, "");
}
END_TEST

START_TEST(test_response_rejects)
{
	struct deliver_request r;
	char err[256];

	make_request(&r);
	deliver_request_add(&r, 7, 0, "second@d");
	static const char *bad[] = {
		"tern-result 1\nresult 0 ok 2.0.0 - fine\nend\n",                                /* missing one */
		"tern-result 1\nresult 0 ok 2.0.0 - a\nresult 7 ok 2.0.0 - b\nresult 7 ok 2.0.0 - c\nend\n",
		"tern-result 1\nresult 7 ok 2.0.0 - b\nresult 0 ok 2.0.0 - a\nend\n",             /* order */
		"tern-result 1\nresult 0 ok 2.0.0 - a\nresult 8 ok 2.0.0 - b\nend\n",             /* idx */
		"tern-result 1\nresult 0 ok 4.0.0 - a\nresult 7 ok 2.0.0 - b\nend\n",             /* class */
		"tern-result 1\nresult 0 fine 2.0.0 - a\nresult 7 ok 2.0.0 - b\nend\n",           /* status */
		"tern-result 1\nresult 0 ok 2.0.0000 - a\nresult 7 ok 2.0.0 - b\nend\n",          /* dsn */
		"tern-result 1\nresult 0 ok 2.0.0 -\nresult 7 ok 2.0.0 - b\nend\n",               /* no text */
		"tern-result 1\nresult 0 ok 2.0.0 - a\rb\nresult 7 ok 2.0.0 - b\nend\n",          /* CR */
		"tern-result 1\nresult 0 ok 2.0.0 - a\nresult 7 ok 2.0.0 - b\nend\nx",            /* trailing */
		"tern-result 1\nresult 0 ok 2.0.0 - a\nresult 7 ok 2.0.0 - b\n",                  /* no end */
		"tern-result 2\nresult 0 ok 2.0.0 - a\nresult 7 ok 2.0.0 - b\nend\n",             /* version */
		"tern-deliver 1\nresult 0 ok 2.0.0 - a\nresult 7 ok 2.0.0 - b\nend\n",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(deliver_decode_response(bad[i], strlen(bad[i]), &r, err, sizeof(err)) < 0,
			      "accepted response %zu", i);
		/* all or nothing: a rejected response fills no recipient */
		ck_assert_int_eq(r.rcpt[0].status, DELIVER_TEMP);
		ck_assert_str_eq(r.rcpt[0].dsn, "");
	}
	static const char ok[] = "tern-result 1\nresult 0 ok 2.0.0 - \nresult 7 perm 5.1.1 - no such user\nend\n";
	ck_assert_int_eq(deliver_decode_response(ok, strlen(ok), &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_OK);
	ck_assert_str_eq(r.rcpt[1].text, "no such user");
	ck_assert_str_eq(r.rcpt[1].mta, "");
	/* relayed (a next hop without DSN) and the remote MTA name */
	static const char relayed[] =
		"tern-result 1\nresult 0 relayed 2.0.0 mx.example.net sent\nresult 7 temp 4.4.1 - x\nend\n";
	ck_assert_int_eq(deliver_decode_response(relayed, strlen(relayed), &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_RELAYED);
	ck_assert_str_eq(r.rcpt[0].mta, "mx.example.net");
	ck_assert_str_eq(r.rcpt[0].text, "sent");
	static const char badrelay[] = "tern-result 1\nresult 0 relayed 5.0.0 - a\nresult 7 ok 2.0.0 - b\nend\n";
	ck_assert_int_lt(deliver_decode_response(badrelay, strlen(badrelay), &r, err, sizeof(err)), 0);
	deliver_request_free(&r);
}
END_TEST

START_TEST(test_too_many_rcpts_panics)
{
	struct deliver_request r;

	log_open("test_proto_deliver", LOG_TO_STDERR);
	deliver_request_init(&r);
	for (int i = 0; i <= DELIVER_MAX_RCPT; i++)
		deliver_request_add(&r, (unsigned)i, 0, "u@d");
}
END_TEST

/* A temporary file holding "hello", opened read-only. */
static int message_fd(void)
{
	char path[] = "/tmp/test_pd_XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "hello", 5), 5);
	unlink(path);
	return fd;
}

START_TEST(test_fd_passing)
{
	int sv[2], mfd = message_fd(), got = -1;
	struct deliver_request r;
	char data[8];

	log_open("test_proto_deliver", LOG_TO_STDERR);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* the descriptor rides on the first bytes; the rest follows in pieces */
	ck_assert_int_eq(sock_send_fd(sv[0], mfd, good1, 10), 0);
	ck_assert_int_eq(write_all(sv[0], good1 + 10, 30), 0);
	ck_assert_int_eq(write_all(sv[0], good1 + 40, strlen(good1) - 40), 0);
	close(mfd);
	deliver_request_init(&r);
	ck_assert_int_eq(deliver_read_request(sv[1], 2000, &r, &got), 0);
	ck_assert_int_ge(got, 0);
	ck_assert_int_eq(pread(got, data, 5, 0), 5);
	ck_assert(memcmp(data, "hello", 5) == 0);
	close(got);
	ck_assert_str_eq(r.queue_id, "4AbC123");
	ck_assert_uint_eq(r.nrcpt, 1);

	/* the agent answers on the same socket */
	deliver_set_result(&r.rcpt[0], DELIVER_OK, "2.0.0", "delivered to maildir");
	ck_assert_int_eq(deliver_write_response(sv[1], &r), 0);
	close(sv[1]);
	char resp[4096];
	ssize_t n = read(sv[0], resp, sizeof(resp));
	ck_assert_int_gt(n, 0);
	struct deliver_request q;
	char err[256];
	make_request(&q);
	ck_assert_int_eq(deliver_decode_response(resp, (size_t)n, &q, err, sizeof(err)), 0);
	ck_assert_str_eq(q.rcpt[0].text, "delivered to maildir");
	close(sv[0]);
	deliver_request_free(&r);
	deliver_request_free(&q);
}
END_TEST

/* Run one deliver_read_request against what write_fn sends; returns its result. */
static int read_after(void (*write_fn)(int), int timeout_ms, int *got)
{
	int sv[2], rc;
	struct deliver_request r;

	log_open("test_proto_deliver", LOG_TO_STDERR);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	write_fn(sv[0]);
	deliver_request_init(&r);
	rc = deliver_read_request(sv[1], timeout_ms, &r, got);
	deliver_request_free(&r);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void send_without_fd(int s)
{
	ck_assert_int_eq(write_all(s, good1, strlen(good1)), 0);
}

/* The descriptor comes with the second write, after the reader has taken
 * the first bytes (a child writes with a pause, so the two are not merged
 * into one read). */
static void send_fd_late(int s)
{
	int mfd = message_fd();
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (write_all(s, good1, 10) < 0)
			_exit(1);
		usleep(200 * 1000);
		sock_send_fd(s, mfd, good1 + 10, strlen(good1) - 10);
		_exit(0);
	}
	close(mfd);
}

static void send_trailing(int s)
{
	int mfd = message_fd();
	char buf[1024];

	snprintf(buf, sizeof(buf), "%sextra", good1);
	ck_assert_int_eq(sock_send_fd(s, mfd, buf, strlen(buf)), 0);
	close(mfd);
	shutdown(s, SHUT_WR);
}

static void send_partial(int s)
{
	int mfd = message_fd();

	ck_assert_int_eq(sock_send_fd(s, mfd, good1, 20), 0);
	close(mfd);
}

static void send_partial_eof(int s)
{
	send_partial(s);
	shutdown(s, SHUT_WR);
}

START_TEST(test_read_rejects)
{
	int got = 123;

	ck_assert_int_eq(read_after(send_without_fd, 2000, &got), -1);
	ck_assert_int_eq(got, -1);
	ck_assert_int_eq(read_after(send_fd_late, 2000, &got), -1);
	ck_assert_int_eq(got, -1);
	waitpid(-1, NULL, 0);
	ck_assert_int_eq(read_after(send_trailing, 2000, &got), -1);
	ck_assert_int_eq(got, -1);
	ck_assert_int_eq(read_after(send_partial_eof, 2000, &got), -1);
	ck_assert_int_eq(got, -1);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(read_after(send_partial, 300, &got), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_eq(got, -1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_ge(ms, 250);
	ck_assert_int_lt(ms, 2000);
}
END_TEST

START_TEST(test_read_oversized)
{
	int sv[2], got = 5, mfd = message_fd();
	struct deliver_request r;
	pid_t pid;

	log_open("test_proto_deliver", LOG_TO_STDERR);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* a peer that never stops talking */
		static char junk[65536];
		signal(SIGPIPE, SIG_IGN);
		close(sv[1]);
		memset(junk, 'x', sizeof(junk));
		sock_send_fd(sv[0], mfd, "x", 1);
		for (int i = 0; i < 1000; i++)
			if (write_all(sv[0], junk, sizeof(junk)) < 0)
				break;
		_exit(0);
	}
	close(sv[0]);
	close(mfd);
	deliver_request_init(&r);
	ck_assert_int_eq(deliver_read_request(sv[1], 5000, &r, &got), -1);
	ck_assert_int_eq(got, -1);
	close(sv[1]);
	waitpid(pid, NULL, 0);
}
END_TEST

static Suite *proto_deliver_suite(void)
{
	Suite *s = suite_create("proto_deliver");
	TCase *tc = tcase_create("codec");
	TCase *io = tcase_create("io");

	tcase_add_test(tc, test_encode_exact);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_line_mutations);
	tcase_add_test(tc, test_truncated_and_trailing);
	tcase_add_test(tc, test_field_values);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_encode_rejects);
	tcase_add_test(tc, test_set_result_sanitises);
	tcase_add_test(tc, test_response_rejects);
	tcase_add_test_raise_signal(tc, test_too_many_rcpts_panics, SIGABRT);
	suite_add_tcase(s, tc);
	tcase_set_timeout(io, 10);
	tcase_add_test(io, test_fd_passing);
	tcase_add_test(io, test_read_rejects);
	tcase_add_test(io, test_read_oversized);
	suite_add_tcase(s, io);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(proto_deliver_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
