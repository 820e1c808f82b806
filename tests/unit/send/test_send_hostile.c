/*
 * Unit tests for send/: the SMTP client against hostile and broken peers,
 * scripted with the fake server of fix_smtp.c.
 *
 * Cases: malformed replies (bad code, mixed codes, 999, overlong line, NUL,
 * "250-" then EOF, more than 100 lines); a 421 or 5xx greeting; SMTPUTF8
 * to a peer without it; a banner that never comes (timeout); a 421 at each
 * stage (deferred, nothing sent after it), a line sent after the reply to
 * "." (the connection is not reused), bare-LF replies and a CR inside a
 * reply line, a peer that stops reading the content
 * (smtp_data_xfer_timeout), and 8-bit MIME nested 1000 deep for a peer
 * without 8BITMIME.
 */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "fix_smtp.h"

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
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): the string ends with the "\r\n" below */
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
		fake_sync_reset();
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
	size_t big;
	char *content = big_content(&big);
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


static Suite *hostile_suite(void)
{
	Suite *s = suite_create("send_hostile");
	TCase *tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_malformed_replies);
	tcase_add_test(tc, test_malformed_long_nul_eof);
	tcase_add_test(tc, test_greeting_421_and_smtputf8);
	tcase_add_test(tc, test_banner_timeout);
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
	SRunner *sr = srunner_create(hostile_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
