/*
 * Unit tests for common/strutil.c: list tokenising with mixed separators
 * and oversized tokens, domain-list matching (exact, ".parent" subdomains,
 * case), ASCII lower-casing, and strict unsigned parsing at its bounds.
 */
#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "strutil.h"

START_TEST(test_list_next)
{
	const char *p = "  a, b\tc,,\n d ,";
	char tok[8];

	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 1);
	ck_assert_str_eq(tok, "a");
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 1);
	ck_assert_str_eq(tok, "b");
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 1);
	ck_assert_str_eq(tok, "c");
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 1);
	ck_assert_str_eq(tok, "d");
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 0);
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 0);
}
END_TEST

START_TEST(test_list_next_toolong)
{
	const char *p = "short 1234567 12345678 next";
	char tok[8];

	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 1);
	ck_assert_str_eq(tok, "short");
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 1); /* 7 chars + NUL fits */
	ck_assert_str_eq(tok, "1234567");
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), -1); /* skipped, reported */
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 1);
	ck_assert_str_eq(tok, "next");
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 0);

	p = "";
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 0);
	p = " ,\t, ";
	ck_assert_int_eq(list_next(&p, tok, sizeof(tok)), 0);
}
END_TEST

START_TEST(test_list_has_domain)
{
	const char *list = "example.com, .Example.ORG localhost";
	char big[1200];

	ck_assert_int_eq(list_has_domain(list, "example.com"), 1);
	ck_assert_int_eq(list_has_domain(list, "EXAMPLE.Com"), 1);
	ck_assert_int_eq(list_has_domain(list, "mail.example.com"), 0);
	ck_assert_int_eq(list_has_domain(list, "mail.example.org"), 1);
	ck_assert_int_eq(list_has_domain(list, "a.b.EXAMPLE.org"), 1);
	ck_assert_int_eq(list_has_domain(list, "example.org"), 0);
	ck_assert_int_eq(list_has_domain(list, "badexample.org"), 0);
	ck_assert_int_eq(list_has_domain(list, "localhost"), 1);
	ck_assert_int_eq(list_has_domain(list, "localhost."), 0);
	ck_assert_int_eq(list_has_domain(list, "xexample.com"), 0);
	ck_assert_int_eq(list_has_domain(list, ""), 0);
	ck_assert_int_eq(list_has_domain("", "example.com"), 0);
	ck_assert_int_eq(list_has_domain(".", "x"), 0);
	ck_assert_int_eq(list_has_domain(NULL, "x"), 0);

	/* An oversized entry is skipped without disturbing later ones. */
	memset(big, 'a', sizeof(big));
	memcpy(big + sizeof(big) - 12, " ok.example", 12);
	ck_assert_int_eq(list_has_domain(big, "ok.example"), 1);
}
END_TEST

START_TEST(test_str_lower)
{
	char s[] = "MiXeD.Case-123\xc4\x80";

	ck_assert_ptr_eq(str_lower(s), s);
	ck_assert_str_eq(s, "mixed.case-123\xc4\x80");
}
END_TEST

START_TEST(test_parse_ull)
{
	unsigned long long v = 99;

	ck_assert_int_eq(parse_ull("0", 10, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_ull("10", 10, &v), 0);
	ck_assert_uint_eq(v, 10);
	ck_assert_int_eq(parse_ull("007", 10, &v), 0);
	ck_assert_uint_eq(v, 7);
	v = 99;
	ck_assert_int_eq(parse_ull("11", 10, &v), -1);
	ck_assert_int_eq(parse_ull("", 10, &v), -1);
	ck_assert_int_eq(parse_ull("-1", 10, &v), -1);
	ck_assert_int_eq(parse_ull("+1", 10, &v), -1);
	ck_assert_int_eq(parse_ull(" 1", 10, &v), -1);
	ck_assert_int_eq(parse_ull("1 ", 10, &v), -1);
	ck_assert_int_eq(parse_ull("1x", 10, &v), -1);
	ck_assert_int_eq(parse_ull("0x1", 10, &v), -1);
	ck_assert_int_eq(parse_ull(NULL, 10, &v), -1);
	ck_assert_int_eq(parse_ull("5", 0, &v), -1);
	ck_assert_uint_eq(v, 99); /* untouched on failure */

	ck_assert_int_eq(parse_ull("18446744073709551615", ULLONG_MAX, &v), 0);
	ck_assert(v == ULLONG_MAX);
	ck_assert_int_eq(parse_ull("18446744073709551616", ULLONG_MAX, &v), -1);
	ck_assert_int_eq(parse_ull("99999999999999999999", ULLONG_MAX, &v), -1);
	ck_assert_int_eq(parse_ull("000000000000000000000000000001", 1, &v), 0);
	ck_assert_uint_eq(v, 1);
}
END_TEST

static Suite *strutil_suite(void)
{
	Suite *s = suite_create("strutil");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_list_next);
	tcase_add_test(tc, test_list_next_toolong);
	tcase_add_test(tc, test_list_has_domain);
	tcase_add_test(tc, test_str_lower);
	tcase_add_test(tc, test_parse_ull);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(strutil_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
