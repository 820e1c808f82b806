/*
 * Unit tests for DATA: scripted sessions that commit real queue files into
 * a temporary queue directory, then read them back with qf_read.  Covers
 * dot-unstuffing, every SMTP smuggling variant, bare LF in content, the
 * size limit, the Received: header, the envelope, and the failure paths
 * (no queue directory, lost connection, timeout).
 */
#include <check.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include "proto_deliver.h"
#include "smtpd_harness.h"

#define EHLO_REPLY                                                                                         \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define TXN "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n"
#define EHLO_REPLY_2048                                                                                    \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 2048\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define EHLO_REPLY_1024                                                                                    \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1024\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define TXN_TAIL "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
#define TXN_REPLY EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"

/* Replace every queue ID in text by "QID" (so replies compare exactly). */
static void
mask_qids(char *text)
{
	char *p = text;

	while ((p = strstr(p, "queued as ")) != NULL) {
		p += strlen("queued as ");
		if (strlen(p) >= QUEUEID_LEN) {
			memmove(p + 3, p + QUEUEID_LEN, strlen(p + QUEUEID_LEN) + 1);
			memcpy(p, "QID", 3);
		}
	}
}

/* Run one session whose only packet is `in` (n bytes) and return the body
 * of the first queued message (after the Received: header) in body. */
static void
one_message(const char *in, size_t n, const char *expect_replies, struct buf *body)
{
	struct fake *f = fake_new();
	struct qf_envelope e;
	struct buf content;
	char qid[QUEUEID_SIZE];

	fake_send(f, in, n);
	fake_run(f);
	mask_qids(f->out.data);
	ck_assert_str_eq(after_greeting(f), expect_replies);
	fake_free(f);

	f = fake_new();
	fake_send(f, in, n);
	fake_run(f);
	ck_assert_int_eq(h_queued_id(f, 1, qid), -1); /* exactly one message */
	ck_assert_int_eq(h_queued_id(f, 0, qid), 0);
	buf_init(&content, 16 * 1024 * 1024);
	h_read_queued(qid, &e, &content);
	buf_reset(body);
	{
		const char *b = h_body_after_received(&content);

		ck_assert_int_eq(buf_append(body, b, content.len - (size_t)(b - content.data)), 0);
	}
	qf_envelope_free(&e);
	buf_free(&content);
	fake_free(f);
}

START_TEST(simple_message)
{
	struct fake *f = fake_new();
	struct qf_envelope e;
	struct buf content;
	char qid[QUEUEID_SIZE], expect[512];
	const char *body;

	SEND(f, "EHLO c.example\r\n");
	SEND(f, "MAIL FROM:<a@b.example>\r\n");
	SEND(f, "RCPT TO:<u@mx.test>\r\n");
	SEND(f, "DATA\r\n");
	SEND(f, "Subject: hi\r\n\r\nHello.\r\n.\r\n");
	SEND(f, "QUIT\r\n");
	fake_run(f);
	ck_assert_int_eq(h_queued_id(f, 0, qid), 0);
	snprintf(expect, sizeof(expect), TXN_REPLY "250 2.0.0 Ok: queued as %s\r\n221 2.0.0 Bye\r\n", qid);
	ck_assert_str_eq(after_greeting(f), expect);

	buf_init(&content, 1 << 20);
	h_read_queued(qid, &e, &content);
	ck_assert_str_eq(e.qid, qid);
	ck_assert_str_eq(e.sender, "a@b.example");
	ck_assert_uint_eq(e.nrcpt, 1);
	ck_assert_str_eq(e.rcpt[0].address, "u@mx.test");
	ck_assert_ptr_null(e.rcpt[0].orcpt);
	ck_assert_uint_eq(e.rcpt[0].notify, 0);
	ck_assert_uint_eq(e.flags, 0);
	ck_assert_str_eq(e.client, "c.example (unknown [192.0.2.10])");
	snprintf(expect, sizeof(expect),
		 "Received: from c.example (unknown [192.0.2.10])\n\tby mx.test (tern) with ESMTP id %s\n\tfor "
		 "<u@mx.test>; ",
		 qid);
	ck_assert_msg(strncmp(content.data, expect, strlen(expect)) == 0, "header: %s", content.data);
	body = h_body_after_received(&content);
	ck_assert_str_eq(body, "Subject: hi\n\nHello.\n");
	ck_assert_int_eq(h_count_files("incoming"), 1);
	ck_assert_int_eq(h_count_files("tmp"), 0);
	qf_envelope_free(&e);
	buf_free(&content);
	fake_free(f);
}
END_TEST

START_TEST(received_header_variants)
{
	struct fake *f = fake_new();
	struct qf_envelope e;
	struct buf content;
	char qid[QUEUEID_SIZE], expect[512];

	strcpy(f->ip, "2001:db8::7");
	SEND(f, "HELO a(b)\"c;d\\e\xc3\xa9\r\n");
	SEND(f, "MAIL FROM:<>\r\n");
	SEND(f, "RCPT TO:<u@mx.test>\r\n");
	SEND(f, "RCPT TO:<postmaster>\r\n");
	SEND(f, "DATA\r\n");
	SEND(f, "x\r\n.\r\n");
	fake_run(f);
	ck_assert_int_eq(h_queued_id(f, 0, qid), 0);
	buf_init(&content, 1 << 20);
	h_read_queued(qid, &e, &content);
	ck_assert_str_eq(e.sender, "");
	ck_assert_uint_eq(e.nrcpt, 2);
	ck_assert_str_eq(e.rcpt[1].address, "postmaster@mx.test");
	ck_assert_str_eq(e.client, "a?b??c?d?e?? (unknown [2001:db8::7])");
	snprintf(expect, sizeof(expect),
		 "Received: from a?b??c?d?e?? (unknown [IPv6:2001:db8::7])\n\tby mx.test (tern) with SMTP id %s;\n\t",
		 qid);
	ck_assert_msg(strncmp(content.data, expect, strlen(expect)) == 0, "header: %s", content.data);
	ck_assert_str_eq(h_body_after_received(&content), "x\n");
	qf_envelope_free(&e);
	buf_free(&content);
	fake_free(f);
}
END_TEST

START_TEST(body_8bitmime_flag)
{
	struct fake *f = fake_new();
	struct qf_envelope e;
	struct buf content;
	char qid[QUEUEID_SIZE];

	SEND(f, "EHLO c\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
	SEND(f, "caf\xc3\xa9 \x01\0x\r\n.\r\n");
	fake_run(f);
	ck_assert_int_eq(h_queued_id(f, 0, qid), 0);
	buf_init(&content, 1 << 20);
	h_read_queued(qid, &e, &content);
	ck_assert_uint_eq(e.flags, DELIVER_F_8BITMIME);
	/* 8-bit, control and NUL bytes in the body are data and kept. */
	ck_assert_mem_eq(content.data + content.len - 10, "caf\xc3\xa9 \x01\0x\n", 10);
	qf_envelope_free(&e);
	buf_free(&content);
	fake_free(f);
}
END_TEST

START_TEST(dot_unstuffing)
{
	static const char in[] = TXN ".\r\n" /* never: "." as the first line of DATA ends it */;
	static const char in2[] = TXN "..\r\n.x\r\n..x\r\n...\r\nmid.dle\r\n. \r\n.\r\n";
	struct buf body;

	buf_init(&body, 1 << 20);
	/* An empty message is fine. */
	one_message(in, sizeof(in) - 1, TXN_REPLY "250 2.0.0 Ok: queued as QID\r\n", &body);
	ck_assert_str_eq(body.data, "");
	one_message(in2, sizeof(in2) - 1, TXN_REPLY "250 2.0.0 Ok: queued as QID\r\n", &body);
	ck_assert_str_eq(body.data, ".\nx\n.x\n..\nmid.dle\n \n");
	buf_free(&body);
}
END_TEST

START_TEST(bare_lf_in_content)
{
	static const char in[] = TXN "a\nb\r\nc\n\r\n.\r\n";
	struct buf body;

	buf_init(&body, 1 << 20);
	one_message(in, sizeof(in) - 1, TXN_REPLY "250 2.0.0 Ok: queued as QID\r\n", &body);
	ck_assert_str_eq(body.data, "a\nb\nc\n\n");
	buf_free(&body);
}
END_TEST

/*
 * SMTP smuggling (CVE-2023-51764/51765/51766): none of these may end the
 * message.  After the fake end the client smuggles a second transaction;
 * it must stay content, and only the real CRLF.CRLF ends the one message.
 */
static const struct {
	const char *seq;
	size_t len;
	const char *stored; /* how the sequence and what follows appear in the body */
	size_t stored_len;
} smuggle[] = {
#define SM(s, st) { s, sizeof(s) - 1, st, sizeof(st) - 1 }
	/* bare_newline = normalize: every bare CR or LF is a line end, and the
	 * "." line after it is unstuffed to an empty line. */
	SM("\n.\n", "A\n\nMAIL"),          /* LF.LF */
	SM("\r.\r", "A\n\nMAIL"),          /* CR.CR */
	SM("\r.\n", "A\n\nMAIL"),          /* CR.LF */
	SM("\n.\r", "A\n\nMAIL"),          /* LF.CR */
	SM("\n.\r\n", "A\n\nMAIL"),        /* LF.CRLF: the line before ended in a bare LF */
	SM("\r\n.\n", "A\n\nMAIL"),        /* CRLF.LF */
	SM("\r.\r\n", "A\n\nMAIL"),        /* CR.CRLF */
	SM("\r\n.\r", "A\n\nMAIL"),        /* CRLF.CR */
	SM("\r\n\0.\r\n", "A\n\0.\nMAIL"), /* CRLF NUL . CRLF */
#undef SM
};

START_TEST(smuggling_variants)
{
	static const char tail[] = "MAIL FROM:<evil@x.example>\r\nRCPT TO:<v@mx.test>\r\nDATA\r\nSmuggled\r\n";
	struct buf in, body, want;
	size_t i = (size_t)_i;

	buf_init(&in, 4096);
	buf_init(&body, 1 << 20);
	buf_init(&want, 4096);
	buf_puts(&in, TXN "Subject: t\r\n\r\nA");
	buf_append(&in, smuggle[i].seq, smuggle[i].len);
	buf_puts(&in, tail);
	buf_puts(&in, ".\r\nQUIT\r\n");
	one_message(in.data, in.len, TXN_REPLY "250 2.0.0 Ok: queued as QID\r\n221 2.0.0 Bye\r\n", &body);
	/* The body as stored: everything up to the real end, with LF line ends. */
	buf_puts(&want, "Subject: t\n\n");
	buf_append(&want, smuggle[i].stored, smuggle[i].stored_len);
	buf_puts(&want, " FROM:<evil@x.example>\nRCPT TO:<v@mx.test>\nDATA\nSmuggled\n");
	ck_assert_uint_eq(body.len, want.len);
	ck_assert_mem_eq(body.data, want.data, want.len);
	buf_free(&in);
	buf_free(&body);
	buf_free(&want);
}
END_TEST

START_TEST(smuggling_nul_variant_stored_whole)
{
	struct fake *f = fake_new();
	static const char in[] = TXN "A\r\n\0.\r\nB\r\n.\r\n";
	struct qf_envelope e;
	struct buf content;
	char qid[QUEUEID_SIZE];

	fake_send(f, in, sizeof(in) - 1);
	fake_run(f);
	ck_assert_int_eq(h_queued_id(f, 0, qid), 0);
	buf_init(&content, 1 << 20);
	h_read_queued(qid, &e, &content);
	ck_assert_mem_eq(content.data + content.len - 7, "A\n\0.\nB\n", 7);
	qf_envelope_free(&e);
	buf_free(&content);
	fake_free(f);
}
END_TEST

/* "." pipelined with the next transaction right behind it (A.7). */
START_TEST(pipelined_after_dot)
{
	struct fake *f = fake_new();
	char qid[QUEUEID_SIZE];

	SEND(f, "EHLO c\r\n");
	SEND(f, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
	SEND(f, "one\r\n");
	SEND(f, ".\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<v@mx.test>\r\nDATA\r\n");
	SEND(f, "two\r\n.\r\nQUIT\r\n");
	fake_run(f);
	mask_qids(f->marked.data);
	ck_assert_str_eq(f->marked.data, "220 mx.test ESMTP tern\r\n|" EHLO_REPLY
					 "|250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
					 "|250 2.0.0 Ok: queued as QID\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
					 "354 End data with <CR><LF>.<CR><LF>\r\n"
					 "|250 2.0.0 Ok: queued as QID\r\n221 2.0.0 Bye\r\n|");
	ck_assert_int_eq(h_count_files("incoming"), 2);
	ck_assert_int_eq(h_queued_id(f, 1, qid), 0);
	fake_free(f);
}
END_TEST

START_TEST(long_lines_not_truncated)
{
	struct buf in, body, want;
	size_t i;

	/* With the RFC 5321 line limit off, long lines are kept whole. */
	h_conf((const char *const[]){ "smtpd_text_line_limit=0", NULL });

	buf_init(&in, 1 << 20);
	buf_init(&body, 1 << 20);
	buf_init(&want, 1 << 20);
	buf_puts(&in, TXN);
	/* 10000 octets, a dot at a piece boundary (4096) and a leading dot. */
	buf_putc(&in, '.');
	buf_putc(&want, '.');
	for (i = 1; i < 10000; i++) {
		char c = (char)(i % SMTPD_DATA_PIECE == 0 ? '.' : 'a' + (char)(i % 26));

		buf_putc(&in, c);
		buf_putc(&want, c);
	}
	buf_puts(&in, "\r\n.\r\n");
	/* The leading ".." is unstuffed once: the line was ".." + rest. */
	buf_consume(&want, 0);
	{
		struct buf in2;

		buf_init(&in2, 1 << 20);
		buf_puts(&in2, TXN ".");
		buf_append(&in2, in.data + strlen(TXN), in.len - strlen(TXN));
		one_message(in2.data, in2.len, TXN_REPLY "250 2.0.0 Ok: queued as QID\r\n", &body);
		buf_free(&in2);
	}
	buf_putc(&want, '\n');
	ck_assert_uint_eq(body.len, want.len);
	ck_assert_str_eq(body.data, want.data);
	buf_free(&in);
	buf_free(&body);
	buf_free(&want);
}
END_TEST

/* message_size_limit counts the client's bytes with CRLF line ends. */
static void
size_case(size_t xs, int accepted)
{
	struct fake *f = fake_new();
	struct buf in;

	buf_init(&in, 8 << 20);
	buf_puts(&in, TXN);
	while (xs-- > 0)
		ck_assert_int_eq(buf_putc(&in, 'x'), 0);
	buf_puts(&in, "\r\n.\r\nNOOP\r\n");
	fake_send(f, in.data, in.len);
	fake_run(f);
	mask_qids(f->out.data);
	if (accepted) {
		ck_assert_str_eq(after_greeting(f),
				 EHLO_REPLY_2048 TXN_TAIL "250 2.0.0 Ok: queued as QID\r\n250 2.0.0 Ok\r\n");
		ck_assert_int_eq(h_count_files("incoming"), 1);
	} else {
		ck_assert_str_eq(after_greeting(f),
				 EHLO_REPLY_2048 TXN_TAIL "552 5.3.4 Error: message file too big\r\n250 2.0.0 Ok\r\n");
		ck_assert_int_eq(h_count_files("incoming"), 0);
	}
	ck_assert_int_eq(h_count_files("tmp"), 0);
	buf_free(&in);
	fake_free(f);
}

START_TEST(size_at_limit)
{
	h_conf((const char *const[]){ "message_size_limit=2048", "smtpd_text_line_limit=0", NULL });
	size_case(2046, 1);
}
END_TEST

START_TEST(size_one_over)
{
	h_conf((const char *const[]){ "message_size_limit=2048", "smtpd_text_line_limit=0", NULL });
	size_case(2047, 0);
}
END_TEST

START_TEST(size_far_over_drained)
{
	h_conf((const char *const[]){ "message_size_limit=2048", "smtpd_text_line_limit=0", NULL });
	size_case(3 * 1024 * 1024, 0);
}
END_TEST

START_TEST(after_552_next_message_ok)
{
	struct fake *f = fake_new();
	struct buf in;
	int i;

	h_conf((const char *const[]){ "message_size_limit=1024", NULL });
	buf_init(&in, 1 << 20);
	buf_puts(&in, TXN);
	for (i = 0; i < 100; i++)
		buf_puts(&in, "0123456789012345678901234567890123456789\r\n");
	buf_puts(&in, ".\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\nsmall\r\n.\r\n");
	fake_send(f, in.data, in.len);
	fake_run(f);
	mask_qids(f->out.data);
	ck_assert_str_eq(after_greeting(f), EHLO_REPLY_1024 TXN_TAIL "552 5.3.4 Error: message file too big\r\n"
						      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
						      "250 2.0.0 Ok: queued as QID\r\n");
	ck_assert_int_eq(h_count_files("incoming"), 1);
	buf_free(&in);
	fake_free(f);
}
END_TEST

START_TEST(no_queue_directory_451)
{
	struct fake *f = fake_new();
	char kv[400], err[256];

	snprintf(kv, sizeof(kv), "queue_directory=%s/missing", h_queue_dir);
	ck_assert_int_eq(conf_override(kv, err, sizeof(err)), 0);
	SEND(f, TXN);
	SEND(f, "RSET\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
						       "451 4.3.0 Error: queue file write error\r\n250 2.0.0 Ok\r\n");
	fake_free(f);
}
END_TEST

/* A write error while storing the content (here EFBIG from a file size
 * limit): the client is told 451 after the dot and nothing stays behind. */
START_TEST(content_write_failure_451)
{
	struct fake *f = fake_new();
	struct rlimit rl = { 8192, 8192 };
	struct buf in;
	int i;

	h_conf((const char *const[]){ "smtpd_text_line_limit=0", "header_size_limit=1g", NULL });

	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	buf_init(&in, 1 << 20);
	buf_puts(&in, TXN);
	for (i = 0; i < 5000; i++)
		buf_puts(&in, "0123456789012345678901234567890123456789012345678\r\n");
	buf_puts(&in, ".\r\nQUIT\r\n");
	fake_send(f, in.data, in.len);
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), TXN_REPLY "451 4.3.0 Error: queue file write error\r\n221 2.0.0 Bye\r\n");
	ck_assert_int_eq(h_count_files("incoming"), 0);
	ck_assert_int_eq(h_count_files("tmp"), 0);
	buf_free(&in);
	fake_free(f);
}
END_TEST

START_TEST(lost_connection_in_data)
{
	struct fake *f = fake_new();

	SEND(f, TXN);
	SEND(f, "Subject: x\r\n\r\nhalf a message\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), TXN_REPLY);
	ck_assert_int_eq(h_count_files("incoming"), 0);
	ck_assert_int_eq(h_count_files("tmp"), 0);
	fake_free(f);
}
END_TEST

START_TEST(eof_after_unterminated_dot)
{
	struct fake *f = fake_new();

	SEND(f, TXN);
	SEND(f, "x\r\n.");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), TXN_REPLY);
	ck_assert_int_eq(h_count_files("incoming"), 0);
	ck_assert_int_eq(h_count_files("tmp"), 0);
	fake_free(f);
}
END_TEST

START_TEST(timeout_in_data)
{
	struct fake *f = fake_new();

	f->timeout_at_end = 1;
	SEND(f, TXN);
	SEND(f, "Subject: x\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), TXN_REPLY "421 4.4.2 mx.test Error: timeout exceeded\r\n");
	ck_assert_int_eq(h_count_files("incoming"), 0);
	ck_assert_int_eq(h_count_files("tmp"), 0);
	fake_free(f);
}
END_TEST

START_TEST(two_messages_one_session)
{
	struct fake *f = fake_new();
	struct qf_envelope e;
	struct buf content;
	char qid[QUEUEID_SIZE];

	SEND(f, TXN);
	SEND(f, "first\r\n.\r\n");
	SEND(f, "MAIL FROM:<c@d.example>\r\nRCPT TO:<x@mx.test>\r\nRCPT TO:<y@example.org>\r\nDATA\r\n");
	SEND(f, "second\r\n.\r\n");
	fake_run(f);
	ck_assert_int_eq(h_queued_id(f, 1, qid), 0);
	buf_init(&content, 1 << 20);
	h_read_queued(qid, &e, &content);
	ck_assert_str_eq(e.sender, "c@d.example");
	ck_assert_uint_eq(e.nrcpt, 2);
	ck_assert_str_eq(e.rcpt[0].address, "x@mx.test");
	ck_assert_str_eq(e.rcpt[1].address, "y@example.org");
	ck_assert_str_eq(h_body_after_received(&content), "second\n");
	ck_assert_int_eq(h_count_files("incoming"), 2);
	qf_envelope_free(&e);
	buf_free(&content);
	fake_free(f);
}
END_TEST

START_TEST(data_with_argument)
{
	struct fake *f = fake_new();

	SEND(f, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA now\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n501 5.5.4 Syntax: DATA\r\n");
	ck_assert_int_eq(h_count_files("tmp"), 0);
	fake_free(f);
}
END_TEST

static Suite *
data_suite(void)
{
	Suite *s = suite_create("smtpd_data");
	TCase *tc = tcase_create("data");

	tcase_add_checked_fixture(tc, h_setup_queue, h_teardown_queue);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, simple_message);
	tcase_add_test(tc, received_header_variants);
	tcase_add_test(tc, body_8bitmime_flag);
	tcase_add_test(tc, dot_unstuffing);
	tcase_add_test(tc, bare_lf_in_content);
	tcase_add_loop_test(tc, smuggling_variants, 0, (int)(sizeof(smuggle) / sizeof(smuggle[0])));
	tcase_add_test(tc, smuggling_nul_variant_stored_whole);
	tcase_add_test(tc, pipelined_after_dot);
	tcase_add_test(tc, long_lines_not_truncated);
	tcase_add_test(tc, size_at_limit);
	tcase_add_test(tc, size_one_over);
	tcase_add_test(tc, size_far_over_drained);
	tcase_add_test(tc, after_552_next_message_ok);
	tcase_add_test(tc, no_queue_directory_451);
	tcase_add_test(tc, content_write_failure_451);
	tcase_add_test(tc, lost_connection_in_data);
	tcase_add_test(tc, eof_after_unterminated_dot);
	tcase_add_test(tc, timeout_in_data);
	tcase_add_test(tc, two_messages_one_session);
	tcase_add_test(tc, data_with_argument);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(data_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
