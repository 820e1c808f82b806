/*
 * Unit tests for the SMTP command layer: whole sessions against a scripted
 * client (smtpd_harness.h), asserting the exact reply bytes.  No sockets,
 * no queue (DATA is covered by test_smtpd_data.c).
 */
#include <check.h>
#include <string.h>

#include "smtpd_harness.h"

#define GREETING "220 mx.test ESMTP tern\r\n"
#define EHLO_REPLY                                                                                         \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"

/* Run the script given as one packet per argument and compare all output. */
static void
session(const char *expect, const char *const *packets)
{
	struct fake *f = fake_new();
	size_t i;

	for (i = 0; packets[i] != NULL; i++)
		fake_sends(f, packets[i]);
	fake_run(f);
	ck_assert_str_eq(f->out.data, expect);
	fake_free(f);
}

#define SESSION(expect, ...) session((expect), (const char *const[]){ __VA_ARGS__, NULL })

START_TEST(greeting_and_quit)
{
	SESSION(GREETING "221 2.0.0 Bye\r\n", "QUIT\r\n");
}
END_TEST

START_TEST(ehlo_advertises)
{
	SESSION(GREETING EHLO_REPLY "221 2.0.0 Bye\r\n", "EHLO client.example\r\n", "QUIT\r\n");
}
END_TEST

START_TEST(helo_reply)
{
	SESSION(GREETING "250 mx.test\r\n221 2.0.0 Bye\r\n", "HELO client.example\r\n", "QUIT\r\n");
}
END_TEST

START_TEST(verbs_case_insensitive)
{
	SESSION(GREETING "250 mx.test\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
			 "221 2.0.0 Bye\r\n",
		"helo c\r\n", "mail from:<a@b.example>\r\n", "rCpT tO:<u@mx.test>\r\n", "rset\r\n", "NoOp\r\n",
		"quit\r\n");
}
END_TEST

START_TEST(bare_lf_commands_accepted)
{
	SESSION(GREETING "250 mx.test\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n", "HELO c\n", "NOOP\n", "QUIT\n");
}
END_TEST

START_TEST(state_machine_503)
{
	SESSION(GREETING "503 5.5.1 Error: send HELO/EHLO first\r\n"
			 "503 5.5.1 Error: need MAIL command\r\n"
			 "503 5.5.1 Error: need MAIL command\r\n" EHLO_REPLY
			 "503 5.5.1 Error: need MAIL command\r\n"
			 "250 2.1.0 Ok\r\n"
			 "503 5.5.1 Error: need RCPT command\r\n"
			 "503 5.5.1 Error: nested MAIL command\r\n"
			 "250 2.0.0 Ok\r\n"
			 "503 5.5.1 Error: need MAIL command\r\n"
			 "221 2.0.0 Bye\r\n",
		"MAIL FROM:<a@b.example>\r\n", "RCPT TO:<u@mx.test>\r\n", "DATA\r\n", "EHLO c\r\n", "DATA\r\n",
		"MAIL FROM:<a@b.example>\r\n", "DATA\r\n", "MAIL FROM:<a@b.example>\r\n", "RSET\r\n",
		"RCPT TO:<u@mx.test>\r\n", "QUIT\r\n");
}
END_TEST

START_TEST(ehlo_resets_transaction)
{
	SESSION(GREETING EHLO_REPLY "250 2.1.0 Ok\r\n" EHLO_REPLY "503 5.5.1 Error: need MAIL command\r\n",
		"EHLO c\r\n", "MAIL FROM:<a@b.example>\r\n", "EHLO c\r\n", "RCPT TO:<u@mx.test>\r\n");
}
END_TEST

START_TEST(syntax_errors)
{
	SESSION(GREETING "501 5.5.4 Syntax: HELO hostname\r\n"
			 "501 5.5.4 Syntax: EHLO hostname\r\n"
			 "250 mx.test\r\n"
			 "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
			 "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
			 "501 5.1.7 Bad sender address syntax\r\n"
			 "250 2.1.0 Ok\r\n"
			 "501 5.5.4 Syntax: RCPT TO:<address>\r\n"
			 "501 5.5.4 Syntax: RSET\r\n"
			 "501 5.5.4 Syntax: QUIT\r\n"
			 "501 5.5.4 Syntax: VRFY address\r\n"
			 "500 5.5.2 Error: command not recognized\r\n"
			 "500 5.5.2 Error: bad syntax\r\n"
			 "500 5.5.2 Error: command not recognized\r\n"
			 "221 2.0.0 Bye\r\n",
		"HELO\r\n", "EHLO   \r\n", "HELO c\r\n", "MAIL\r\n", "MAIL TO:<a@b>\r\n",
		"MAIL FROM:<a@b.example>junk\r\n", "MAIL FROM:<a@b.example>\r\n", "RCPT FROM:<u@mx.test>\r\n",
		"RSET now\r\n", "QUIT please\r\n", "VRFY\r\n", "FOO bar\r\n", "\r\n", "MAIL\tFROM:<a@b>\r\n",
		"QUIT\r\n");
}
END_TEST

START_TEST(bad_addresses)
{
	struct fake *f = fake_new();
	struct buf expect;

	h_conf((const char *const[]){ "strict_rfc821_envelopes=yes", NULL });
	SEND(f, "EHLO c\r\n");
	SEND(f, "MAIL FROM:a@b.example\r\n");               /* no brackets */
	SEND(f, "MAIL FROM:<u@>\r\n");                      /* empty domain (CVE-2020-7247) */
	SEND(f, "MAIL FROM:<>\r\n");                        /* null sender is fine */
	SEND(f, "RCPT TO:<>\r\n");                          /* but not as a recipient */
	SEND(f, "RCPT TO:<user>\r\n");                      /* bare local part */
	SEND(f, "RCPT TO:<@a,@b:u@mx.test>\r\n");           /* source route: stripped */
	SEND(f, "RCPT TO:<Postmaster>\r\n");                /* RFC 5321 4.5.1 */
	SEND(f, "RCPT TO:<a@b@mx.test>\r\n");
	fake_run(f);
	buf_init(&expect, 4096);
	buf_printf(&expect, EHLO_REPLY "501 5.1.7 Bad sender address syntax: %s\r\n", addr_strerror(ADDR_ERR_SYNTAX));
	buf_printf(&expect, "501 5.1.7 Bad sender address syntax: %s\r\n", addr_strerror(ADDR_ERR_EMPTY_DOMAIN));
	buf_printf(&expect, "250 2.1.0 Ok\r\n");
	buf_printf(&expect, "501 5.1.3 Bad recipient address syntax: %s\r\n",
		   addr_strerror(ADDR_ERR_NULL_NOT_ALLOWED));
	buf_printf(&expect, "501 5.1.3 Bad recipient address syntax: domain required\r\n");
	buf_printf(&expect, "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n");
	buf_printf(&expect, "501 5.1.3 Bad recipient address syntax: %s\r\n", addr_strerror(ADDR_ERR_BAD_DOMAIN));
	ck_assert_str_eq(after_greeting(f), expect.data);
	buf_free(&expect);
	fake_free(f);
}
END_TEST

START_TEST(mail_parameters)
{
	struct fake *f = fake_new();

	SEND(f, "EHLO c\r\n");
	SEND(f, "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME\r\n");
	SEND(f, "RSET\r\n");
	SEND(f, "MAIL FROM:<a@b.example> size=10240001\r\n");
	SEND(f, "MAIL FROM:<a@b.example> SIZE=99999999999999999999\r\n"); /* 20 digits: overflow */
	SEND(f, "MAIL FROM:<a@b.example> SIZE=12x\r\n");
	SEND(f, "MAIL FROM:<a@b.example> SIZE=\r\n");
	SEND(f, "MAIL FROM:<a@b.example> BODY=7BIT BODY=8BITMIME\r\n");
	SEND(f, "MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n");
	SEND(f, "MAIL FROM:<a@b.example> =value\r\n");
	SEND(f, "MAIL FROM:<a@b.example> FOO=x\r\n");
	SEND(f, "MAIL FROM:<a@b.example> XYZZY\r\n");
	SEND(f, "MAIL FROM:<a@b.example>   BODY=7BIT\r\n");
	SEND(f, "RCPT TO:<u@mx.test> NOTIFY=NEVER\r\n");
	SEND(f, "RCPT TO:<u@mx.test> =x\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), EHLO_REPLY "250 2.1.0 Ok\r\n"
						       "250 2.0.0 Ok\r\n"
						       "552 5.3.4 Message size exceeds fixed limit\r\n"
						       "552 5.3.4 Message size exceeds fixed limit\r\n"
						       "501 5.5.4 Bad SIZE parameter syntax\r\n"
						       "501 5.5.4 Bad parameter syntax\r\n"
						       "501 5.5.4 Bad BODY parameter syntax\r\n"
						       "501 5.5.4 Unsupported BODY parameter value\r\n"
						       "501 5.5.4 Bad parameter syntax\r\n"
						       "555 5.5.4 Unsupported option: FOO\r\n"
						       "555 5.5.4 Unsupported option: XYZZY\r\n"
						       "250 2.1.0 Ok\r\n"
						       "250 2.1.5 Ok\r\n"
						       "501 5.5.4 Bad parameter syntax\r\n");
	fake_free(f);
}
END_TEST

START_TEST(params_need_ehlo)
{
	SESSION(GREETING "250 mx.test\r\n555 5.5.4 Unsupported option: SIZE (send EHLO first)\r\n",
		"HELO c\r\n", "MAIL FROM:<a@b.example> SIZE=10\r\n");
}
END_TEST

START_TEST(help_vrfy_expn)
{
	SESSION(GREETING "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH\r\n"
			 "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n"
			 "502 5.5.1 Error: command not implemented\r\n"
			 "250 2.0.0 Ok\r\n",
		"HELP\r\n", "VRFY root\r\n", "EXPN staff\r\n", "NOOP anything goes\r\n");
}
END_TEST

/* A pipelined group is answered in one write; the server flushes only when
 * it has to wait. */
START_TEST(pipelining_batches_replies)
{
	struct fake *f = fake_new();

	SEND(f, "EHLO c\r\n");
	SEND(f, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nRCPT TO:<v@mx.test>\r\nRSET\r\n");
	SEND(f, "NOOP\r\nQUIT\r\n");
	fake_run(f);
	ck_assert_str_eq(f->marked.data, GREETING "|" EHLO_REPLY
						 "|250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"
						 "|250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n|");
	fake_free(f);
}
END_TEST

/* A command split over two packets: the first half makes the server wait,
 * so the replies queued so far go out then. */
START_TEST(pipelining_split_command)
{
	struct fake *f = fake_new();

	SEND(f, "HELO c\r\nNO");
	SEND(f, "OP\r\nQUIT\r\n");
	fake_run(f);
	ck_assert_str_eq(f->marked.data, GREETING "|250 mx.test\r\n|250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n|");
	fake_free(f);
}
END_TEST

START_TEST(overlong_line_resyncs)
{
	struct fake *f = fake_new();
	char line[600];

	/* 510 octets + CRLF = 512: the longest legal command line. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	memcpy(line + 510, "\r\n", 2);
	fake_send(f, line, 512);
	/* 513 octets with CRLF: too long. */
	line[510] = 'x';
	memcpy(line + 511, "\r\n", 2);
	fake_send(f, line, 513);
	SEND(f, "QUIT\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), "250 2.0.0 Ok\r\n500 5.5.2 Error: line too long\r\n221 2.0.0 Bye\r\n");
	fake_free(f);
}
END_TEST

START_TEST(huge_line_without_lf)
{
	struct fake *f = fake_new();
	size_t n = 10 * 1024 * 1024, i;
	char *big = malloc(n);

	ck_assert_ptr_nonnull(big);
	memset(big, 'A', n);
	for (i = 0; i < n; i += 65536)
		fake_send(f, big + i, 65536);
	SEND(f, "\r\nQUIT\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), "500 5.5.2 Error: line too long\r\n221 2.0.0 Bye\r\n");
	free(big);
	fake_free(f);
}
END_TEST

START_TEST(nul_and_control_characters)
{
	struct fake *f = fake_new();

	SEND(f, "EHLO c\r\n");
	SEND(f, "MAIL FROM:<a\0b@b.example>\r\n");
	SEND(f, "NOOP\0\r\n");
	SEND(f, "NOOP\r\r\n"); /* bare CR */
	SEND(f, "NO\rOP\r\n");
	SEND(f, "N\xc3\x96OP\r\n"); /* 8-bit verb */
	SEND(f, "QUIT\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), EHLO_REPLY "500 5.5.2 Error: NUL character in command\r\n"
						       "500 5.5.2 Error: NUL character in command\r\n"
						       "500 5.5.2 Error: control character in command\r\n"
						       "500 5.5.2 Error: control character in command\r\n"
						       "500 5.5.2 Error: command not recognized\r\n"
						       "221 2.0.0 Bye\r\n");
	fake_free(f);
}
END_TEST

START_TEST(bare_cr_at_eof_is_not_a_command)
{
	SESSION(GREETING, "QUIT\r");
}
END_TEST

START_TEST(error_limit)
{
	struct fake *f = fake_new();
	struct buf expect;
	int i;

	buf_init(&expect, 8192);
	for (i = 0; i < 100; i++)
		SEND(f, "BOGUS\r\n");
	fake_run(f);
	buf_puts(&expect, GREETING);
	for (i = 0; i < 20; i++)
		buf_puts(&expect, "500 5.5.2 Error: command not recognized\r\n");
	buf_puts(&expect, "421 4.7.0 mx.test Error: too many errors\r\n");
	ck_assert_str_eq(f->out.data, expect.data);
	buf_free(&expect);
	fake_free(f);
}
END_TEST

START_TEST(timeout_421)
{
	struct fake *f = fake_new();

	f->timeout_at_end = 1;
	SEND(f, "EHLO c\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), EHLO_REPLY "421 4.4.2 mx.test Error: timeout exceeded\r\n");
	fake_free(f);
}
END_TEST

START_TEST(write_failure_ends_session)
{
	struct fake *f = fake_new();

	f->fail_writes = 1;
	SEND(f, "EHLO c\r\n");
	SEND(f, "NOOP\r\n");
	fake_run(f);
	ck_assert_str_eq(f->out.data, "");
	/* The server stopped reading once it could not write. */
	ck_assert_uint_le(f->reads, 1);
	fake_free(f);
}
END_TEST

START_TEST(relay_denied)
{
	struct fake *f = fake_new();

	SEND(f, "EHLO c\r\n");
	SEND(f, "MAIL FROM:<a@b.example>\r\n");
	SEND(f, "RCPT TO:<u@elsewhere.example>\r\n");
	SEND(f, "RCPT TO:<u@MX.TEST>\r\n");
	SEND(f, "RCPT TO:<u@example.org>\r\n");
	SEND(f, "RCPT TO:<u@relay.example>\r\n");
	SEND(f, "RCPT TO:<u%elsewhere.example@mx.test>\r\n");
	SEND(f, "RCPT TO:<elsewhere.example!u@mx.test>\r\n");
	SEND(f, "RCPT TO:<\"u@elsewhere.example\"@mx.test>\r\n");
	SEND(f, "RCPT TO:<@mx.test:u@elsewhere.example>\r\n");
	SEND(f, "RCPT TO:<u@[192.0.2.1]>\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f),
			 EHLO_REPLY "250 2.1.0 Ok\r\n"
				    "554 5.7.1 <u@elsewhere.example>: Relay access denied\r\n"
				    "250 2.1.5 Ok\r\n"
				    "250 2.1.5 Ok\r\n"
				    "250 2.1.5 Ok\r\n"
				    "554 5.7.1 <u%elsewhere.example@mx.test>: Relay access denied\r\n"
				    "554 5.7.1 <elsewhere.example!u@mx.test>: Relay access denied\r\n"
				    "554 5.7.1 <\"u@elsewhere.example\"@mx.test>: Relay access denied\r\n"
				    "554 5.7.1 <u@elsewhere.example>: Relay access denied\r\n"
				    "554 5.7.1 <u@[192.0.2.1]>: Relay access denied\r\n");
	fake_free(f);
}
END_TEST

START_TEST(mynetworks_may_relay)
{
	struct fake *f = fake_new();

	strcpy(f->ip, "10.1.2.3");
	SEND(f, "EHLO c\r\n");
	SEND(f, "MAIL FROM:<a@b.example>\r\n");
	SEND(f, "RCPT TO:<u@elsewhere.example>\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	fake_free(f);

	f = fake_new();
	strcpy(f->ip, "::1");
	SEND(f, "EHLO c\r\n");
	SEND(f, "MAIL FROM:<a@b.example>\r\n");
	SEND(f, "RCPT TO:<u@elsewhere.example>\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	fake_free(f);
}
END_TEST

START_TEST(recipient_limit)
{
	struct fake *f = fake_new();
	struct buf expect;
	int i;

	h_conf((const char *const[]){ "smtpd_recipient_limit=3", NULL });
	buf_init(&expect, 8192);
	SEND(f, "EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
	for (i = 0; i < 5; i++)
		SEND(f, "RCPT TO:<u@mx.test>\r\n");
	SEND(f, "RSET\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\n");
	fake_run(f);
	buf_puts(&expect, EHLO_REPLY "250 2.1.0 Ok\r\n");
	for (i = 0; i < 3; i++)
		buf_puts(&expect, "250 2.1.5 Ok\r\n");
	buf_puts(&expect, "452 4.5.3 Error: too many recipients\r\n452 4.5.3 Error: too many recipients\r\n");
	buf_puts(&expect, "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	ck_assert_str_eq(after_greeting(f), expect.data);
	buf_free(&expect);
	fake_free(f);
}
END_TEST

/* 1001 recipients at the default limit of 1000, then a client that keeps
 * going: the 452s are not errors at first, but a flood of them is. */
START_TEST(recipient_flood)
{
	struct fake *f = fake_new();
	struct buf in;
	const char *p;
	int i, n452 = 0, n250 = 0;

	buf_init(&in, 16 * 1024 * 1024);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
	for (i = 0; i < 1000 + SMTPD_RCPT_OVERSHOOT + 50; i++)
		buf_puts(&in, "RCPT TO:<u@mx.test>\r\n");
	fake_send(f, in.data, in.len);
	fake_run(f);
	for (p = f->out.data; (p = strstr(p, "250 2.1.5")) != NULL; p++)
		n250++;
	for (p = f->out.data; (p = strstr(p, "452 4.5.3")) != NULL; p++)
		n452++;
	ck_assert_int_eq(n250, 1000);
	ck_assert_int_eq(n452, SMTPD_RCPT_OVERSHOOT + 20);
	ck_assert_ptr_nonnull(strstr(f->out.data, "421 4.7.0 mx.test Error: too many errors\r\n"));
	buf_free(&in);
	fake_free(f);
}
END_TEST

START_TEST(helo_too_long)
{
	struct fake *f = fake_new();
	char line[300];

	memset(line, 'h', sizeof(line));
	memcpy(line, "HELO ", 5);
	memcpy(line + 5 + 256, "\r\n", 2);
	fake_send(f, line, 5 + 256 + 2);
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), "501 5.5.4 Error: hostname too long\r\n");
	fake_free(f);
}
END_TEST

START_TEST(cmd_find)
{
	ck_assert_ptr_nonnull(smtpd_cmd_find("mail", 4));
	ck_assert_str_eq(smtpd_cmd_find("eHlO", 4)->verb, "EHLO");
	ck_assert_ptr_null(smtpd_cmd_find("MAI", 3));
	ck_assert_ptr_null(smtpd_cmd_find("MAILX", 5));
	ck_assert_ptr_null(smtpd_cmd_find("", 0));
	/* Issue 9: STARTTLS and AUTH are table rows now. */
	ck_assert_ptr_nonnull(smtpd_cmd_find("STARTTLS", 8));
	ck_assert_ptr_nonnull(smtpd_cmd_find("auth", 4));
	ck_assert_ptr_null(smtpd_cmd_find("STARTTL", 7));
}
END_TEST

static Suite *
cmd_suite(void)
{
	Suite *s = suite_create("smtpd_cmd");
	TCase *tc = tcase_create("session");

	tcase_add_checked_fixture(tc, h_setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, greeting_and_quit);
	tcase_add_test(tc, ehlo_advertises);
	tcase_add_test(tc, helo_reply);
	tcase_add_test(tc, verbs_case_insensitive);
	tcase_add_test(tc, bare_lf_commands_accepted);
	tcase_add_test(tc, state_machine_503);
	tcase_add_test(tc, ehlo_resets_transaction);
	tcase_add_test(tc, syntax_errors);
	tcase_add_test(tc, bad_addresses);
	tcase_add_test(tc, mail_parameters);
	tcase_add_test(tc, params_need_ehlo);
	tcase_add_test(tc, help_vrfy_expn);
	tcase_add_test(tc, pipelining_batches_replies);
	tcase_add_test(tc, pipelining_split_command);
	tcase_add_test(tc, overlong_line_resyncs);
	tcase_add_test(tc, huge_line_without_lf);
	tcase_add_test(tc, nul_and_control_characters);
	tcase_add_test(tc, bare_cr_at_eof_is_not_a_command);
	tcase_add_test(tc, error_limit);
	tcase_add_test(tc, timeout_421);
	tcase_add_test(tc, write_failure_ends_session);
	tcase_add_test(tc, relay_denied);
	tcase_add_test(tc, mynetworks_may_relay);
	tcase_add_test(tc, recipient_limit);
	tcase_add_test(tc, recipient_flood);
	tcase_add_test(tc, helo_too_long);
	tcase_add_test(tc, cmd_find);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(cmd_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
