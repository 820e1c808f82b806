/*
 * Unit tests for send/: the SMTP client's protocol, against the scripted
 * fake server of fix_smtp.c (the exact bytes tern sends, and the result
 * of each recipient).
 *
 * Cases: pipelined 250/450/550 mix with dot-stuffing and CR handling;
 * no pipelining with a multi-line banner and BODY=8BITMIME; EHLO 5xx → HELO;
 * 5xx to MAIL; a dropped connection before and after "."; connection
 * refused; the content converter on its own and against a model; a large
 * body; the next address after failures, and a retry of only the
 * unanswered recipients there.
 * Issue 6: connection reuse (two requests, one connection, no RSET after a completed transaction,
 * QUIT at the end), the reuse count limit, 8-bit → quoted-printable for a
 * peer without 8BITMIME (single part and multipart, exact bytes), DSN
 * parameters passed on / "relayed" without DSN, SIZE, the hop limit and
 * the per-command timeouts.
 * Hostile and broken peers are in test_send_hostile.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "fix_smtp.h"

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
	int fd = message_fd("x\n", 2);
	struct deliver_request r;
	request(&r, refused_port(), 2);
	deliver_request_add(&r, 0, 0, "a@y.test");
	send_deliver_request(&r, fd);
	assert_result(&r.rcpt[0], DELIVER_TEMP, "4.4.1", "connect to 127.0.0.1[127.0.0.1]");
	deliver_request_free(&r);
	close(fd);
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
	size_t big;
	char *content = big_content(&big);
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
	cf.smtp_connection_reuse_count_limit = 1;
	send_reuse_begin();
	struct deliver_request r;
	size_t len;
	char *got = deliver(plain_peer, &r, "x\n", 0, three, 1, &len);
	ck_assert(!send_reuse_cached());
	send_reuse_end();
	ck_assert_str_eq(got, "EHLO client.test\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<a@y.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	free(got);
	deliver_request_free(&r);
}
END_TEST


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
	tcase_add_test(tc, test_data_rejected);
	tcase_add_test(tc, test_connection_refused);
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
