/*
 * test_smtpd_esmtp — issue 3's extensions over scripted sessions: BDAT,
 * DSN and SMTPUTF8 parameters (and what reaches the queue file), the local
 * recipient check, the relay tricks, bare_newline = reject, the content
 * limits (text line, header size, hop count), the junk and error limits,
 * disable_vrfy_command; and the pure parsers of smtpd_esmtp.c.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto_deliver.h"
#include "smtpd_harness.h"

#define EHLO_REPLY                                                                                         \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n" \
	"250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define TXN_REPLY EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"

/* Replace every queue ID after "queued as " with QID. */
static void
mask(char *text)
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

/* Run script (one packet, n bytes); compare the replies after the greeting
 * (queue IDs masked); if body is not NULL, the first queued message's body
 * after the Received: header goes there, and *env its envelope. */
static void
run(const char *script, size_t n, const char *expect, struct buf *body, struct qf_envelope *env)
{
	struct fake *f = fake_new();
	char qid[QUEUEID_SIZE];

	fake_send(f, script, n);
	fake_run(f);
	if (body != NULL) {
		struct buf content;
		const char *b;

		ck_assert_int_eq(h_queued_id(f, 0, qid), 0);
		buf_init(&content, 1 << 24);
		h_read_queued(qid, env, &content);
		b = h_body_after_received(&content);
		buf_reset(body);
		ck_assert_int_eq(buf_append(body, b, content.len - (size_t)(b - content.data)), 0);
		buf_free(&content);
	}
	mask(f->out.data);
	ck_assert_str_eq(after_greeting(f), expect);
	fake_free(f);
}
#define RUN(lit, expect) run((lit), sizeof(lit) - 1, (expect), NULL, NULL)

/* ---- BDAT ---- */

START_TEST(bdat_chunks_and_crlf_across_chunks)
{
	static const char in[] = "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\n"
				 "BDAT 11\r\nSubject: x\r"         /* 11 octets, ends in CR */
				 "BDAT 14 LAST\r\n\n\r\nbody\n.\r\nz\r\n" /* LF pairs with that CR */
				 "QUIT\r\n";
	struct buf body;
	struct qf_envelope e;

	buf_init(&body, 1 << 20);
	run(in, sizeof(in) - 1,
	    TXN_REPLY "250 2.0.0 Ok: 11 octets\r\n250 2.0.0 Ok: queued as QID\r\n221 2.0.0 Bye\r\n", &body, &e);
	/* No dot-unstuffing in BDAT; the bare LF after "body" is a line end. */
	ck_assert_str_eq(body.data, "Subject: x\n\nbody\n.\nz\n");
	qf_envelope_free(&e);
	buf_free(&body);
}
END_TEST

START_TEST(bdat_zero_last_and_no_final_newline)
{
	static const char in[] = "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\n"
				 "BDAT 3\r\nA\r\nBDAT 1\r\nBBDAT 0 LAST\r\nQUIT\r\n";
	struct buf body;
	struct qf_envelope e;

	buf_init(&body, 1 << 20);
	run(in, sizeof(in) - 1,
	    TXN_REPLY "250 2.0.0 Ok: 3 octets\r\n250 2.0.0 Ok: 1 octets\r\n250 2.0.0 Ok: queued as QID\r\n"
		      "221 2.0.0 Bye\r\n",
	    &body, &e);
	ck_assert_str_eq(body.data, "A\nB\n"); /* the queue's content always ends in LF */
	qf_envelope_free(&e);
	buf_free(&body);
}
END_TEST

/* A refused BDAT still consumes its chunk: the chunk's bytes are never commands. */
START_TEST(bdat_refused_chunk_is_discarded)
{
	RUN("EHLO c\r\nBDAT 23\r\nMAIL FROM:<e@x.example>NOOP\r\n"
	    "HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 6\r\nRSET\r\nQUIT\r\n",
	    EHLO_REPLY "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n"
		       "250 mx.test\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n503 5.5.1 Error: send EHLO first\r\n"
		       "221 2.0.0 Bye\r\n");
}
END_TEST

START_TEST(bdat_bad_syntax_disconnects)
{
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 99999999999999999999999\r\nQUIT\r\n",
	    TXN_REPLY "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT -1\r\nQUIT\r\n",
	    TXN_REPLY "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 1 LAST X\r\nQUIT\r\n",
	    TXN_REPLY "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
}
END_TEST

START_TEST(bdat_and_data_not_mixed)
{
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 2\r\nA\nDATA\r\n"
	    "RCPT TO:<v@mx.test>\r\nRSET\r\nQUIT\r\n",
	    TXN_REPLY "250 2.0.0 Ok: 2 octets\r\n503 5.5.1 Error: BDAT and DATA cannot be mixed\r\n"
		      "503 5.5.1 Error: BDAT in progress\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
	/* RSET abandoned the message: nothing was queued. */
	ck_assert_int_eq(h_count_files("incoming"), 0);
	ck_assert_int_eq(h_count_files("tmp"), 0);
}
END_TEST

START_TEST(bdat_chunk_over_size_limit)
{
	h_conf((const char *const[]){ "message_size_limit=1024", NULL });
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 1025 LAST\r\n",
	    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1024\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
	    "250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "552 5.3.4 Error: message file too big\r\n");
	ck_assert_int_eq(h_count_files("tmp"), 0);
}
END_TEST

START_TEST(bdat_lost_connection_leaves_nothing)
{
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 100 LAST\r\nonly a few",
	    TXN_REPLY);
	ck_assert_int_eq(h_count_files("tmp"), 0);
	ck_assert_int_eq(h_count_files("incoming"), 0);
}
END_TEST

/* ---- DSN and SMTPUTF8 parameters, stored in the queue file ---- */

START_TEST(dsn_parameters_stored)
{
	static const char in[] = "EHLO c\r\nMAIL FROM:<a@b.example> RET=HDRS ENVID=QQ+2Bid\r\n"
				 "RCPT TO:<u@mx.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+2Bx@mx.test\r\n"
				 "RCPT TO:<v@mx.test> NOTIFY=NEVER\r\nDATA\r\nS: x\r\n\r\nb\r\n.\r\nQUIT\r\n";
	struct buf body;
	struct qf_envelope e;

	buf_init(&body, 1 << 20);
	run(in, sizeof(in) - 1,
	    EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		       "250 2.0.0 Ok: queued as QID\r\n221 2.0.0 Bye\r\n",
	    &body, &e);
	ck_assert_uint_eq(e.flags & DELIVER_F_RET_HDRS, DELIVER_F_RET_HDRS);
	ck_assert_str_eq(e.envid, "QQ+2Bid");
	ck_assert_uint_eq(e.nrcpt, 2);
	ck_assert_uint_eq(e.rcpt[0].notify, NOTIFY_SUCCESS | NOTIFY_DELAY);
	ck_assert_str_eq(e.rcpt[0].orcpt, "rfc822;u+2Bx@mx.test");
	ck_assert_uint_eq(e.rcpt[1].notify, NOTIFY_NEVER);
	ck_assert_ptr_null(e.rcpt[1].orcpt);
	qf_envelope_free(&e);
	buf_free(&body);
}
END_TEST

START_TEST(dsn_parameters_refused)
{
	RUN("EHLO c\r\nMAIL FROM:<a@b.example> RET=BODY\r\nMAIL FROM:<a@b.example> RET=FULL RET=HDRS\r\n"
	    "MAIL FROM:<a@b.example> ENVID=a+0Ab\r\nMAIL FROM:<a@b.example>\r\n"
	    "RCPT TO:<u@mx.test> ORCPT=rfc822;a+0Ab\r\n"   /* decodes to a newline (hostile-inputs 4) */
	    "RCPT TO:<u@mx.test> ORCPT=rfc822;a+0ab\r\n"   /* lower-case hex is not xtext */
	    "RCPT TO:<u@mx.test> ORCPT=a@b\r\n"            /* no addr-type */
	    "RCPT TO:<u@mx.test> NOTIFY=NEVER,SUCCESS\r\n" /* NEVER stands alone */
	    "RCPT TO:<u@mx.test> NOTIFY=SOMETIMES\r\n"
	    "RCPT TO:<u@mx.test> NOTIFY=FAILURE NOTIFY=DELAY\r\nQUIT\r\n",
	    EHLO_REPLY "501 5.5.4 Bad RET parameter value\r\n501 5.5.4 Bad RET parameter syntax\r\n"
		       "501 5.5.4 Bad ENVID parameter syntax\r\n250 2.1.0 Ok\r\n"
		       "501 5.5.4 Bad ORCPT parameter syntax\r\n501 5.5.4 Bad ORCPT parameter syntax\r\n"
		       "501 5.5.4 Bad ORCPT parameter syntax\r\n501 5.5.4 Bad NOTIFY parameter syntax\r\n"
		       "501 5.5.4 Bad NOTIFY parameter syntax\r\n501 5.5.4 Bad NOTIFY parameter syntax\r\n"
		       "221 2.0.0 Bye\r\n");
}
END_TEST

START_TEST(dsn_envid_100_limit)
{
	struct buf in, expect;
	int i;

	buf_init(&in, 1 << 20);
	buf_init(&expect, 1 << 20);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example> ENVID=");
	for (i = 0; i < 100; i++)
		buf_putc(&in, 'e');
	buf_puts(&in, "\r\nRSET\r\nMAIL FROM:<a@b.example> ENVID=");
	for (i = 0; i < 101; i++)
		buf_putc(&in, 'e');
	buf_puts(&in, "\r\nQUIT\r\n");
	run(in.data, in.len,
	    EHLO_REPLY "250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n501 5.5.4 Bad ENVID parameter syntax\r\n221 2.0.0 Bye\r\n",
	    NULL, NULL);
	buf_free(&in);
	buf_free(&expect);
}
END_TEST

START_TEST(smtputf8_addresses)
{
	static const char in[] = "EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@b.example>\r\n"
				 "MAIL FROM:<j\xc3\xb6rg@b.example> SMTPUTF8\r\nRCPT TO:<\xc3\xa5sa@mx.test>\r\n"
				 "DATA\r\nS: x\r\n\r\nb\r\n.\r\nQUIT\r\n";
	struct buf body;
	struct qf_envelope e;

	buf_init(&body, 1 << 20);
	run(in, sizeof(in) - 1,
	    EHLO_REPLY "553 5.6.7 Must declare SMTPUTF8 to send UTF-8 addresses\r\n250 2.1.0 Ok\r\n"
		       "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		       "250 2.0.0 Ok: queued as QID\r\n221 2.0.0 Bye\r\n",
	    &body, &e);
	ck_assert_uint_eq(e.flags & DELIVER_F_SMTPUTF8, DELIVER_F_SMTPUTF8);
	ck_assert_str_eq(e.sender, "j\xc3\xb6rg@b.example");
	ck_assert_str_eq(e.rcpt[0].address, "\xc3\xa5sa@mx.test");
	qf_envelope_free(&e);
	buf_free(&body);
	/* Without SMTPUTF8 on MAIL, a UTF-8 recipient is refused. */
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<\xc3\xa5sa@mx.test>\r\nQUIT\r\n",
	    EHLO_REPLY "250 2.1.0 Ok\r\n553 5.6.7 Must declare SMTPUTF8 to send UTF-8 addresses\r\n221 2.0.0 Bye\r\n");
}
END_TEST

START_TEST(smtputf8_disabled)
{
	h_conf((const char *const[]){ "smtputf8_enable=no", NULL });
	RUN("EHLO c\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\nQUIT\r\n",
	    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
	    "250-DSN\r\n250 CHUNKING\r\n555 5.5.4 Unsupported option: SMTPUTF8\r\n221 2.0.0 Bye\r\n");
}
END_TEST

/* ---- recipients ---- */

START_TEST(unknown_local_user_550)
{
	/* No virtual mailboxes: local names must be Unix users (or aliases). */
	h_conf((const char *const[]){ "local_mailbox_base=", NULL });
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<no-such-user-xq7@mx.test>\r\nRCPT TO:<root@mx.test>\r\n"
	    "RCPT TO:<postmaster@mx.test>\r\nQUIT\r\n",
	    EHLO_REPLY "250 2.1.0 Ok\r\n"
		       "550 5.1.1 <no-such-user-xq7@mx.test>: Recipient address rejected: User unknown in local "
		       "recipient table\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n");
}
END_TEST

/* Issue 3 item 4: none of these is relayed for an untrusted client. */
START_TEST(relay_tricks)
{
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\n"
	    "RCPT TO:<user%other.example@mx.test>\r\n"
	    "RCPT TO:<@mx.test:user@other.example>\r\n"
	    "RCPT TO:<\"user@other.example\"@mx.test>\r\n"
	    "RCPT TO:<other.example!user@mx.test>\r\n"
	    "RCPT TO:<user@other.example@mx.test>\r\n"
	    "RCPT TO:<user@other.example>\r\nQUIT\r\n",
	    EHLO_REPLY "250 2.1.0 Ok\r\n"
		       "554 5.7.1 <user%other.example@mx.test>: Relay access denied\r\n"
		       "554 5.7.1 <user@other.example>: Relay access denied\r\n"
		       "554 5.7.1 <\"user@other.example\"@mx.test>: Relay access denied\r\n"
		       "554 5.7.1 <other.example!user@mx.test>: Relay access denied\r\n"
		       "501 5.1.3 Bad recipient address syntax: bad domain or address literal\r\n"
		       "554 5.7.1 <user@other.example>: Relay access denied\r\n221 2.0.0 Bye\r\n");
}
END_TEST

/* ---- content ---- */

static const char *const bare_variants[] = { "\n.\n", "\r.\r", "\r.\n", "\n.\r", "\n.\r\n", "\r\n.\n", "\r.\r\n",
					     "\r\n.\r", "a\rb", "a\nb" };

START_TEST(bare_newline_reject_550)
{
	struct buf in;

	h_conf((const char *const[]){ "bare_newline=reject", NULL });
	buf_init(&in, 4096);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\nS: x\r\n\r\nA");
	buf_puts(&in, bare_variants[_i]);
	buf_puts(&in, "MAIL FROM:<e@x.example>\r\n.\r\nNOOP\r\n");
	run(in.data, in.len,
	    TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n550 5.5.2 Error: bare <CR> or <LF> received\r\n"
		      "250 2.0.0 Ok\r\n",
	    NULL, NULL);
	ck_assert_int_eq(h_count_files("incoming"), 0);
	ck_assert_int_eq(h_count_files("tmp"), 0);
	buf_free(&in);
}
END_TEST

START_TEST(bare_newline_reject_bdat)
{
	h_conf((const char *const[]){ "bare_newline=reject", NULL });
	RUN("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 8 LAST\r\nA\r\n.\rB\r\n",
	    TXN_REPLY "550 5.5.2 Error: bare <CR> or <LF> received\r\n");
}
END_TEST

/* RFC 5321 4.5.3.1.6: 1000 octets with CRLF pass, 1001 are refused (never cut). */
START_TEST(text_line_limit)
{
	struct buf in;
	int len = 998 + _i; /* octets before CRLF */
	int i;

	buf_init(&in, 1 << 20);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\nS: x\r\n\r\n");
	for (i = 0; i < len; i++)
		buf_putc(&in, 'x');
	buf_puts(&in, "\r\n.\r\n");
	run(in.data, in.len,
	    _i == 0 ? TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as QID\r\n"
		    : TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n"
				"550 5.5.2 Error: message line longer than 1000 octets\r\n",
	    NULL, NULL);
	buf_free(&in);
}
END_TEST

START_TEST(header_size_limit)
{
	struct buf in;
	int i;

	h_conf((const char *const[]){ "header_size_limit=2k", NULL });
	buf_init(&in, 1 << 20);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
	for (i = 0; i < 100; i++)
		buf_puts(&in, "X-Filler: 0123456789\r\n"); /* 21 bytes stored each: 2100 > 2048 */
	buf_puts(&in, "\r\nbody\r\n.\r\n");
	run(in.data, in.len,
	    TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n552 5.3.4 Error: message header size exceeds limit\r\n",
	    NULL, NULL);
	/* The same lines in the body are fine. */
	buf_reset(&in);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\nS: x\r\n\r\n");
	for (i = 0; i < 100; i++)
		buf_puts(&in, "X-Filler: 0123456789\r\n");
	buf_puts(&in, ".\r\n");
	run(in.data, in.len, TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as QID\r\n", NULL,
	    NULL);
	buf_free(&in);
}
END_TEST

START_TEST(hopcount_limit)
{
	struct buf in;
	int i, n = 4 + _i; /* 4 pass with the limit at 5; 5 do not */

	h_conf((const char *const[]){ "hopcount_limit=5", NULL });
	buf_init(&in, 1 << 20);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
	for (i = 0; i < n; i++)
		buf_puts(&in, i % 2 ? "received: from x by y; now\r\n" : "Received: from x\r\n\tby y; now\r\n");
	/* Other fields whose names start alike are no hops. */
	buf_puts(&in, "Received-SPF: pass\r\nReceivedBy: x\r\n");
	buf_puts(&in, "\r\nReceived: in the body does not count\r\n.\r\n");
	run(in.data, in.len,
	    _i == 0 ? TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as QID\r\n"
		    : TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n554 5.4.6 Error: too many hops\r\n",
	    NULL, NULL);
	buf_free(&in);
}
END_TEST

#define DATA_OK TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as QID\r\n"
#define DATA_552 TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n552 5.3.4 Error: message header size exceeds limit\r\n"

/* At the default header_size_limit (102400), a 1 MB header in each shape an
 * attacker can give it is refused whole (tern never cuts a header), and the
 * session goes on: the next message in it is queued.  _i: 0 one 1 MB line
 * (smtpd_text_line_limit off, else the line limit refuses it first), 1 the
 * same folded into 1000-octet lines, 2 100,000 short header lines. */
START_TEST(header_default_limit_1mb)
{
	struct buf in;
	int i;

	if (_i == 0)
		h_conf((const char *const[]){ "smtpd_text_line_limit=0", NULL });
	buf_init(&in, 1 << 23);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\nReceived: from x by y; now\r\n");
	if (_i == 0 || _i == 1) {
		buf_puts(&in, "X-Big: ");
		for (i = 0; i < (1 << 20); i++) {
			if (_i == 1 && i % 990 == 989)
				buf_puts(&in, "\r\n\t");
			else
				buf_putc(&in, 'a' + i % 26);
		}
		buf_puts(&in, "\r\n");
	} else {
		for (i = 0; i < 100000; i++)
			buf_puts(&in, "X-H: v\r\n");
	}
	buf_puts(&in, "\r\nbody\r\n.\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\nS: x\r\n\r\nok\r\n.\r\n");
	run(in.data, in.len,
	    DATA_552 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as QID\r\n",
	    NULL, NULL);
	buf_free(&in);
}
END_TEST

/* header_size_limit counts the header lines as stored (LF line ends), not
 * the empty line after them.  Behind 100 KB of header the hop count is
 * still exact.  _i: 0 49 Received: and 102400 bytes: queued; 1 one byte
 * more: 552; 2 50 Received: (hopcount_limit 50) in 102400 bytes: 554. */
START_TEST(header_at_default_limit)
{
	struct buf in;
	int hops = _i == 2 ? 50 : 49;
	long rest = 102400 + (_i == 1) - hops * 28L;
	int i;

	buf_init(&in, 1 << 20);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
	for (i = 0; i < hops; i++)
		buf_puts(&in, "Received: from x\r\n\tby y; now\r\n"); /* 17 + 11 bytes stored */
	for (i = 0; rest >= 100 + 6; i++, rest -= 100)
		buf_printf(&in, "X-F: %094d\r\n", i); /* 100 bytes stored */
	buf_puts(&in, "X-G: ");
	for (; rest > 6; rest--)
		buf_putc(&in, 'g');
	buf_puts(&in, "\r\n\r\nbody\r\n.\r\n");
	run(in.data, in.len,
	    _i == 0	? DATA_OK
	    : _i == 1 ? DATA_552
		      : TXN_REPLY "354 End data with <CR><LF>.<CR><LF>\r\n554 5.4.6 Error: too many hops\r\n",
	    NULL, NULL);
	buf_free(&in);
}
END_TEST

/* A line that is neither a header field ("name:") nor a continuation of
 * one ends the header, as in Postfix: what follows is body, so neither its
 * Received: lines nor its size count against the header limits.  _i: 0 no
 * header at all, 60 Received: lines after a first line without a colon;
 * 1 a header, then 200 KB of text without the empty line; 2 the same text
 * after a line that starts with a space but continues nothing, with
 * hopcount_limit 1 so that only a miscounted hop could refuse it. */
START_TEST(header_ends_at_non_header_line)
{
	static const char *const first[] = { "Dear user,\r\n", "Subject: hi\r\nthis is no header\r\n",
					     " indented, first\r\n" };
	struct qf_envelope e;
	struct buf in, body;
	size_t start;
	int i;

	h_conf((const char *const[]){ _i == 2 ? "hopcount_limit=1" : "hopcount_limit=50", NULL });
	buf_init(&in, 1 << 20);
	buf_init(&body, 1 << 20);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
	start = in.len;
	buf_puts(&in, first[_i]);
	for (i = 0; i < 60; i++)
		buf_puts(&in, "Received: from x by y; now\r\n");
	for (i = 0; _i > 0 && i < 200; i++)
		buf_printf(&in, "%0998d\r\n", i);
	buf_puts(&in, ".\r\n");
	run(in.data, in.len, DATA_OK, &body, &e);
	/* Stored as sent, with LF line ends. */
	ck_assert_uint_eq(body.len, in.len - start - 3 - (60 + (_i > 0 ? 200 : 0) + 1 + (_i == 1)));
	qf_envelope_free(&e);
	buf_free(&body);
	buf_free(&in);
}
END_TEST

/* ---- session limits and VRFY ---- */

START_TEST(junk_command_limit)
{
	struct fake *f = fake_new();
	int i;

	h_conf((const char *const[]){ "smtpd_junk_command_limit=5", "smtpd_hard_error_limit=3", NULL });
	for (i = 0; i < 20; i++)
		SEND(f, "NOOP\r\n");
	fake_run(f);
	/* 5 free, then 3 more that each count as an error, then 421. */
	ck_assert_str_eq(after_greeting(f), "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
					    "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
					    "421 4.7.0 mx.test Error: too many errors\r\n");
	fake_free(f);
}
END_TEST

START_TEST(vrfy_disabled)
{
	h_conf((const char *const[]){ "disable_vrfy_command=yes", NULL });
	RUN("VRFY root\r\nQUIT\r\n", "502 5.5.1 VRFY command is disabled\r\n221 2.0.0 Bye\r\n");
}
END_TEST

START_TEST(no_brackets_tolerated)
{
	RUN("EHLO c\r\nMAIL FROM:a@b.example SIZE=10\r\nRCPT TO:u@mx.test\r\nQUIT\r\n",
	    EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n");
}
END_TEST

/* ---- the pure parsers ---- */

START_TEST(parsers)
{
	unsigned long long n;
	int last;

	ck_assert_int_eq(smtpd_parse_bdat("0 LAST", &n, &last), 0);
	ck_assert(n == 0 && last == 1);
	ck_assert_int_eq(smtpd_parse_bdat("18446744073709551615", &n, &last), 0);
	ck_assert(n == 18446744073709551615ULL && last == 0);
	ck_assert_int_eq(smtpd_parse_bdat("18446744073709551616", &n, &last), -1);
	ck_assert_int_eq(smtpd_parse_bdat("", &n, &last), -1);
	ck_assert_int_eq(smtpd_parse_bdat("+1", &n, &last), -1);
	ck_assert_int_eq(smtpd_parse_bdat("1 last", &n, &last), 0);
	ck_assert_int_eq(smtpd_parse_bdat("1 LASTX", &n, &last), -1);
	ck_assert_uint_eq(smtpd_parse_notify("never"), NOTIFY_NEVER);
	ck_assert_uint_eq(smtpd_parse_notify("FAILURE,SUCCESS"), NOTIFY_FAILURE | NOTIFY_SUCCESS);
	ck_assert_uint_eq(smtpd_parse_notify("FAILURE,"), 0);
	ck_assert_uint_eq(smtpd_parse_notify(""), 0);
	ck_assert_int_eq(smtpd_xtext_ok("a+2Bb", 100), 1);
	ck_assert_int_eq(smtpd_xtext_ok("a+2", 100), 0);
	ck_assert_int_eq(smtpd_xtext_ok("a+7F", 100), 0);
	ck_assert_int_eq(smtpd_xtext_ok("a+20", 100), 1); /* a space is printable */
	ck_assert_int_eq(smtpd_xtext_ok("", 100), 0);
	ck_assert_int_eq(smtpd_xtext_ok("abc", 2), 0);
	ck_assert_int_eq(smtpd_orcpt_ok("rfc822;a@b"), 1);
	ck_assert_int_eq(smtpd_orcpt_ok("utf-8;a@b"), 1);
	ck_assert_int_eq(smtpd_orcpt_ok(";a@b"), 0);
	ck_assert_int_eq(smtpd_orcpt_ok("rfc 822;a@b"), 0);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("smtpd_esmtp");
	TCase *tc = tcase_create("esmtp");

	tcase_add_checked_fixture(tc, h_setup_queue, h_teardown_queue);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, bdat_chunks_and_crlf_across_chunks);
	tcase_add_test(tc, bdat_zero_last_and_no_final_newline);
	tcase_add_test(tc, bdat_refused_chunk_is_discarded);
	tcase_add_test(tc, bdat_bad_syntax_disconnects);
	tcase_add_test(tc, bdat_and_data_not_mixed);
	tcase_add_test(tc, bdat_chunk_over_size_limit);
	tcase_add_test(tc, bdat_lost_connection_leaves_nothing);
	tcase_add_test(tc, dsn_parameters_stored);
	tcase_add_test(tc, dsn_parameters_refused);
	tcase_add_test(tc, dsn_envid_100_limit);
	tcase_add_test(tc, smtputf8_addresses);
	tcase_add_test(tc, smtputf8_disabled);
	tcase_add_test(tc, unknown_local_user_550);
	tcase_add_test(tc, relay_tricks);
	tcase_add_loop_test(tc, bare_newline_reject_550, 0, (int)(sizeof(bare_variants) / sizeof(bare_variants[0])));
	tcase_add_test(tc, bare_newline_reject_bdat);
	tcase_add_loop_test(tc, text_line_limit, 0, 2);
	tcase_add_test(tc, header_size_limit);
	tcase_add_loop_test(tc, hopcount_limit, 0, 2);
	tcase_add_loop_test(tc, header_default_limit_1mb, 0, 3);
	tcase_add_loop_test(tc, header_at_default_limit, 0, 3);
	tcase_add_loop_test(tc, header_ends_at_non_header_line, 0, 3);
	tcase_add_test(tc, junk_command_limit);
	tcase_add_test(tc, vrfy_disabled);
	tcase_add_test(tc, no_brackets_tolerated);
	tcase_add_test(tc, parsers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
