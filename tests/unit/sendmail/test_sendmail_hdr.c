/*
 * Unit tests for sendmail/sendmail_hdr.c (the -t address-list parser) and
 * sendmail_msg.c's header fix-up: groups, comments, quoted names and local
 * parts, folding, encoded words left intact, source routes, Bcc removal,
 * Resent- headers, missing From/Date/Message-ID added, malformed lists
 * (a NUL in an address: a regression found by tests/fuzz/fuzz_sendmail_hdr).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "../../../sendmail/sendmail.h"

struct got {
	char all[4096];
	int n;
};

static int collect(void *ctx, const char *a)
{
	struct got *g = ctx;

	if (g->n++)
		strcat(g->all, "|");
	strcat(g->all, a);
	return 0;
}

static const char *parse(const char *s, int *n)
{
	static struct got g;

	memset(&g, 0, sizeof(g));
	*n = sm_addr_list(s, strlen(s), collect, &g);
	return g.all;
}

START_TEST(test_simple_and_names)
{
	int n;

	ck_assert_str_eq(parse(" a@x, B <b@x> ,\"C, Jr.\" <c@x>", &n), "a@x|b@x|c@x");
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(parse("=?utf-8?q?J=C3=B6rg?= <j@x>, =?iso-8859-1?B?SvZyZw==?= <k@x>", &n), "j@x|k@x");
	ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(test_groups_comments_folding)
{
	int n;

	ck_assert_str_eq(parse("team: a@x, (boss) b@x;, c@x", &n), "a@x|b@x|c@x");
	ck_assert_str_eq(parse("undisclosed-recipients:;", &n), "");
	ck_assert_int_eq(n, 0);
	ck_assert_str_eq(parse("a@x (A (nested) name),\n\tb@x\r\n (c) , ", &n), "a@x|b@x");
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(parse("a . b @ x . y", &n), "a.b@x.y");
	ck_assert_str_eq(parse("g: a@x", &n), "a@x"); /* unterminated group */
}
END_TEST

START_TEST(test_quoted_route_literal)
{
	int n;

	ck_assert_str_eq(parse("\"a b\"@x, <@r1,@r2:c@x>, d@[127.0.0.1]", &n), "\"a b\"@x|c@x|d@[127.0.0.1]");
	ck_assert_str_eq(parse("\"q\\\" <x@y>\" <real@x>", &n), "real@x");
}
END_TEST

/* sm_addr_list over a literal that holds NULs (its whole size). */
#define LIT_LIST(lit) sm_addr_list(lit, sizeof(lit) - 1, NULL, NULL)

START_TEST(test_malformed)
{
	int n;

	parse("\"open@x", &n);
	ck_assert_int_eq(n, -1);
	parse("(open a@x", &n);
	ck_assert_int_eq(n, -1);
	parse("A <a@x", &n);
	ck_assert_int_eq(n, -1);
	parse("<a@x> <b@x>", &n);
	ck_assert_int_eq(n, -1);
	parse("a@[1.2.3.4", &n);
	ck_assert_int_eq(n, -1);
	/* A NUL would cut the address short (found by fuzz_sendmail_hdr:
	 * "\0 juta@x" gave an empty address, "bob\0@evil" would give "bob"). */
	ck_assert_int_eq(LIT_LIST("\0 juta@x"), -1);
	ck_assert_int_eq(LIT_LIST("bob\0@evil, c@x"), -1);
	ck_assert_int_eq(LIT_LIST("<b\0b@x>"), -1);
	ck_assert_int_eq(LIT_LIST("\"a\0\"@x"), -1);
	/* ... but not in what is thrown away: a display name or a comment. */
	ck_assert_int_eq(LIT_LIST("Jo\0e <j@x>, (c\0) k@x"), 2);
	{
		char big[2000];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		parse(big, &n);
		ck_assert_int_eq(n, -1);
	}
}
END_TEST

static struct buf *msgbuf(const char *s)
{
	static struct buf b;

	buf_init(&b, 1 << 20);
	buf_puts(&b, s);
	return &b;
}

START_TEST(test_fix_headers)
{
	struct sm_opts o;
	struct got g;
	struct buf out;
	char err[128];
	struct buf *m = msgbuf("To: a@x,\n b@x\nBcc: hidden@x\nResent-X: y\nFrom: me@x\nSubject: s\n\nbody\nBcc: not-a-header\n");

	memset(&o, 0, sizeof(o));
	memset(&g, 0, sizeof(g));
	conf_defaults();
	buf_init(&out, 1 << 20);
	ck_assert_int_eq(sm_fix_headers(m, 1, &o, collect, &g, &out, err, sizeof(err)), 0);
	ck_assert_str_eq(g.all, "a@x|b@x|hidden@x");
	ck_assert_ptr_null(strstr(out.data, "hidden"));
	ck_assert_ptr_nonnull(strstr(out.data, "\nbody\nBcc: not-a-header\n"));
	ck_assert_ptr_nonnull(strstr(out.data, "From: me@x\n"));
	ck_assert_ptr_nonnull(strstr(out.data, "\nDate: "));
	ck_assert_ptr_nonnull(strstr(out.data, "\nMessage-ID: <"));
	buf_free(&out);
	buf_free(m);
}
END_TEST

START_TEST(test_fix_resent_and_no_headers)
{
	struct sm_opts o;
	struct got g;
	struct buf out;
	char err[128];
	struct buf *m = msgbuf("To: old@x\nResent-To: new@x\nResent-Bcc: rb@x\n\nb\n");

	memset(&o, 0, sizeof(o));
	memset(&g, 0, sizeof(g));
	conf_defaults();
	buf_init(&out, 1 << 20);
	ck_assert_int_eq(sm_fix_headers(m, 1, &o, collect, &g, &out, err, sizeof(err)), 0);
	ck_assert_str_eq(g.all, "new@x|rb@x");
	ck_assert_ptr_null(strstr(out.data, "rb@x"));
	buf_free(&out);
	buf_free(m);

	/* No header section at all: the headers are added, then an empty line. */
	m = msgbuf("just a body line\n");
	memset(&g, 0, sizeof(g));
	buf_init(&out, 1 << 20);
	ck_assert_int_eq(sm_fix_headers(m, 0, &o, collect, &g, &out, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(out.data, "\n\njust a body line\n"));
	ck_assert_int_eq(strncmp(out.data, "From: ", 6), 0);
	buf_free(&out);
	buf_free(m);

	m = msgbuf("To: \"broken@x\n\nb\n");
	buf_init(&out, 1 << 20);
	ck_assert_int_eq(sm_fix_headers(m, 1, &o, collect, &g, &out, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "To"));
	buf_free(&out);
	buf_free(m);
}
END_TEST

START_TEST(test_from_value_quotes)
{
	struct sm_opts o;
	struct buf out;

	memset(&o, 0, sizeof(o));
	conf_defaults();
	o.fullname = "A \"B\" \\ (C)\n";
	buf_init(&out, 4096);
	sm_from_value(&o, &out);
	ck_assert_int_eq(strncmp(out.data, "\"A \\\"B\\\" \\\\ (C)\" <", 18), 0);
	buf_free(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sendmail_hdr");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_simple_and_names);
	tcase_add_test(tc, test_groups_comments_folding);
	tcase_add_test(tc, test_quoted_route_literal);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_fix_headers);
	tcase_add_test(tc, test_fix_resent_and_no_headers);
	tcase_add_test(tc, test_from_value_quotes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
