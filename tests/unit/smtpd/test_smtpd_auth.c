/*
 * Unit tests for smtpd_auth.c (and the AUTH/STARTTLS rows of the command
 * table): scripted sessions against a password table made by the test,
 * asserting the exact replies of RFC 4954: 235, 334 challenges, 501 for
 * "*" and for bad base64, 535 5.7.8, the lockout 421, 503 out of order,
 * 500 for a 10 KB initial response (hostile-inputs A.9), relay only after
 * AUTH.  The fake stream has no socket, so STARTTLS answers 502 here and
 * AUTH is allowed without TLS (smtpd_tls_auth_only = no); TLS itself is
 * covered by tests/blackbox/test_tls_smtpd.py.
 */
#include <check.h>
#include <crypt.h>
#include <string.h>

#include "cdbmap.h"
#include "smtpd_harness.h"

#define GREETING "220 mx.test ESMTP tern\r\n"
#define EHLO_AUTH                                                                                            \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"  \
	"250-DSN\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n"
/* base64 of "\0alice\0secret" and of "\0alice\0wrong" */
#define ALICE_OK "AGFsaWNlAHNlY3JldA=="
#define ALICE_BAD "AGFsaWNlAHdyb25n"

static char dir[64], table[128];

static void
setup(void)
{
	struct crypt_data cd;
	char err[512], kv[256], cdb[160];
	const char *h;
	FILE *f;

	log_open("test_smtpd_auth", LOG_TO_STDERR);
	strcpy(dir, "/tmp/tern-auth-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(table, sizeof(table), "%s/passwd", dir);
	memset(&cd, 0, sizeof(cd));
	h = crypt_r("secret", "$6$unittestsalt", &cd);
	ck_assert_ptr_nonnull(h);
	f = fopen(table, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "alice %s\n", h);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(cdb, sizeof(cdb), "%s.cdb", table);
	ck_assert_msg(cdbmap_compile(table, cdb, err, sizeof(err)) == 0, "%s", err);
	snprintf(kv, sizeof(kv), "smtpd_sasl_password_maps=%s", table);
	h_conf((const char *const[]){ "smtpd_sasl_auth_enable=yes", "smtpd_tls_auth_only=no",
				      "smtpd_auth_failure_delay=0", "smtpd_auth_failure_limit=2", kv, NULL });
	smtpd_auth_init();
}

static void
teardown(void)
{
	char p[200];

	snprintf(p, sizeof(p), "%s.cdb", table);
	unlink(p);
	unlink(table);
	rmdir(dir);
}

static void
session(const char *expect, const char *const *packets)
{
	struct fake *f = fake_new();

	for (size_t i = 0; packets[i] != NULL; i++)
		fake_sends(f, packets[i]);
	fake_run(f);
	ck_assert_str_eq(f->out.data, expect);
	fake_free(f);
}

#define SESSION(expect, ...) session((expect), (const char *const[]){ __VA_ARGS__, NULL })

START_TEST(ehlo_offers_auth)
{
	SESSION(GREETING EHLO_AUTH "221 2.0.0 Bye\r\n", "EHLO c\r\n", "QUIT\r\n");
}
END_TEST

START_TEST(plain_initial_response_then_relay)
{
	SESSION(GREETING EHLO_AUTH "250 2.1.0 Ok\r\n554 5.7.1 <u@remote.example>: Relay access denied\r\n"
				   "250 2.0.0 Ok\r\n235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"
				   "250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n",
		"EHLO c\r\n", "MAIL FROM:<a@b.example>\r\n", "RCPT TO:<u@remote.example>\r\n", "RSET\r\n",
		"AUTH PLAIN " ALICE_OK "\r\n", "MAIL FROM:<a@b.example>\r\n", "RCPT TO:<u@remote.example>\r\n",
		"QUIT\r\n");
}
END_TEST

START_TEST(plain_challenge_and_login)
{
	SESSION(GREETING EHLO_AUTH "334 \r\n235 2.7.0 Authentication successful\r\n"
				   "503 5.5.1 Error: already authenticated\r\n221 2.0.0 Bye\r\n",
		"EHLO c\r\n", "AUTH PLAIN\r\n", ALICE_OK "\r\n", "AUTH LOGIN\r\n", "QUIT\r\n");
	SESSION(GREETING EHLO_AUTH "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"
				   "221 2.0.0 Bye\r\n",
		"EHLO c\r\n", "AUTH LOGIN\r\n", "YWxpY2U=\r\n", "c2VjcmV0\r\n", "QUIT\r\n");
	/* LOGIN with the user as initial response */
	SESSION(GREETING EHLO_AUTH "334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n221 2.0.0 Bye\r\n",
		"EHLO c\r\n", "AUTH LOGIN YWxpY2U=\r\n", "c2VjcmV0\r\n", "QUIT\r\n");
}
END_TEST

START_TEST(cancel_then_other_mechanism)
{
	/* CVE-2011-1720: nothing of the cancelled exchange survives. */
	SESSION(GREETING EHLO_AUTH "334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication aborted\r\n"
				   "334 \r\n501 5.7.0 Authentication aborted\r\n"
				   "235 2.7.0 Authentication successful\r\n221 2.0.0 Bye\r\n",
		"EHLO c\r\n", "AUTH LOGIN\r\n", "*\r\n", "AUTH PLAIN\r\n", "*\r\n", "AUTH PLAIN " ALICE_OK "\r\n",
		"QUIT\r\n");
}
END_TEST

START_TEST(bad_base64_and_mechanism)
{
	SESSION(GREETING EHLO_AUTH "501 5.5.2 Cannot decode response\r\n501 5.5.2 Cannot decode response\r\n"
				   "334 \r\n501 5.5.2 Cannot decode response\r\n"
				   "504 5.5.4 Unsupported authentication mechanism\r\n"
				   "501 5.5.4 Syntax: AUTH\r\n221 2.0.0 Bye\r\n",
		"EHLO c\r\n", "AUTH PLAIN AGFsaWNlAHNlY3JldA\r\n", "AUTH PLAIN AGFsa=WNl\r\n", "AUTH PLAIN\r\n",
		"not base64!\r\n", "AUTH CRAM-MD5\r\n", "AUTH\r\n", "QUIT\r\n");
}
END_TEST

START_TEST(failures_and_lockout)
{
	SESSION(GREETING EHLO_AUTH "535 5.7.8 Error: authentication failed\r\n"
				   "535 5.7.8 Error: authentication failed\r\n"
				   "421 4.7.0 mx.test Error: too many failed authentication attempts\r\n",
		"EHLO c\r\n", "AUTH PLAIN " ALICE_BAD "\r\n", "AUTH PLAIN AG5vYm9keQB4\r\n", "QUIT\r\n");
	/* authzid different from authcid, empty fields: failures too */
	SESSION(GREETING EHLO_AUTH "535 5.7.8 Error: authentication failed\r\n"
				   "535 5.7.8 Error: authentication failed\r\n"
				   "421 4.7.0 mx.test Error: too many failed authentication attempts\r\n",
		"EHLO c\r\n", "AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==\r\n", "AUTH PLAIN AAA=\r\n");
}
END_TEST

START_TEST(state_checks)
{
	SESSION(GREETING "503 5.5.1 Error: send EHLO first\r\n250 mx.test\r\n503 5.5.1 Error: send EHLO first\r\n"
			 EHLO_AUTH "250 2.1.0 Ok\r\n503 5.5.1 Error: MAIL transaction in progress\r\n"
			 "502 5.5.1 Error: command not implemented\r\n221 2.0.0 Bye\r\n",
		"AUTH PLAIN " ALICE_OK "\r\n", "HELO c\r\n", "AUTH PLAIN " ALICE_OK "\r\n", "EHLO c\r\n",
		"MAIL FROM:<a@b.example>\r\n", "AUTH PLAIN " ALICE_OK "\r\n", "STARTTLS\r\n", "QUIT\r\n");
}
END_TEST

START_TEST(long_responses_bounded)
{
	struct fake *f = fake_new();
	struct buf big;

	buf_init(&big, 20000);
	ck_assert_int_eq(buf_puts(&big, "AUTH PLAIN "), 0);
	for (int i = 0; i < 10240; i++)
		ck_assert_int_eq(buf_putc(&big, 'A'), 0);
	ck_assert_int_eq(buf_puts(&big, "\r\n"), 0);
	fake_sends(f, "EHLO c\r\n");
	fake_sends(f, big.data);     /* 10 KB initial response: the command line limit */
	fake_sends(f, "AUTH PLAIN\r\n");
	fake_sends(f, big.data + 11); /* 10 KB response line: the exchange limit */
	fake_sends(f, "QUIT\r\n");
	fake_run(f);
	ck_assert_str_eq(after_greeting(f), EHLO_AUTH "500 5.5.2 Error: line too long\r\n334 \r\n"
						      "500 5.5.6 Authentication exchange line is too long\r\n"
						      "221 2.0.0 Bye\r\n");
	buf_free(&big);
	fake_free(f);
}
END_TEST

static Suite *
auth_suite(void)
{
	Suite *s = suite_create("smtpd_auth");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ehlo_offers_auth);
	tcase_add_test(tc, plain_initial_response_then_relay);
	tcase_add_test(tc, plain_challenge_and_login);
	tcase_add_test(tc, cancel_then_other_mechanism);
	tcase_add_test(tc, bad_base64_and_mechanism);
	tcase_add_test(tc, failures_and_lockout);
	tcase_add_test(tc, state_checks);
	tcase_add_test(tc, long_responses_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
