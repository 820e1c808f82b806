/*
 * Unit tests for common/cidr.c: IPv4 and IPv6 entries with and without
 * brackets and prefixes, rejection of host bits and malformed entries,
 * IPv4-mapped client addresses, and hostile client address strings.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

static struct cidr_list *parse_ok(const char *list)
{
	char err[256] = "";
	struct cidr_list *l = cidr_list_parse(list, err, sizeof(err));

	ck_assert_msg(l != NULL, "list \"%s\" rejected: %s", list, err);
	return l;
}

START_TEST(test_v4)
{
	struct cidr_list *l = parse_ok("127.0.0.0/8, 10.1.2.3 192.168.0.0/16,172.16.0.0/12");

	ck_assert_int_eq(cidr_list_match(l, "127.0.0.1"), 1);
	ck_assert_int_eq(cidr_list_match(l, "127.255.255.255"), 1);
	ck_assert_int_eq(cidr_list_match(l, "128.0.0.1"), 0);
	ck_assert_int_eq(cidr_list_match(l, "10.1.2.3"), 1);
	ck_assert_int_eq(cidr_list_match(l, "10.1.2.4"), 0);
	ck_assert_int_eq(cidr_list_match(l, "192.168.255.1"), 1);
	ck_assert_int_eq(cidr_list_match(l, "172.31.255.255"), 1);
	ck_assert_int_eq(cidr_list_match(l, "172.32.0.0"), 0);
	ck_assert_int_eq(cidr_list_match(l, "172.15.255.255"), 0);
	cidr_list_free(l);
}
END_TEST

START_TEST(test_v6)
{
	struct cidr_list *l = parse_ok("[::1]/128 2001:db8::/32 [fe80::]/10 ::2");

	ck_assert_int_eq(cidr_list_match(l, "::1"), 1);
	ck_assert_int_eq(cidr_list_match(l, "[::1]"), 1);
	ck_assert_int_eq(cidr_list_match(l, "::2"), 1);
	ck_assert_int_eq(cidr_list_match(l, "::3"), 0);
	ck_assert_int_eq(cidr_list_match(l, "2001:db8:ffff::1"), 1);
	ck_assert_int_eq(cidr_list_match(l, "2001:db9::1"), 0);
	ck_assert_int_eq(cidr_list_match(l, "fe80::1"), 1);
	ck_assert_int_eq(cidr_list_match(l, "febf::1"), 1);
	ck_assert_int_eq(cidr_list_match(l, "fec0::1"), 0);
	/* An IPv6 list never matches IPv4 clients. */
	ck_assert_int_eq(cidr_list_match(l, "127.0.0.1"), 0);
	cidr_list_free(l);
}
END_TEST

START_TEST(test_v4_mapped)
{
	struct cidr_list *l = parse_ok("127.0.0.0/8 192.0.2.0/24");

	ck_assert_int_eq(cidr_list_match(l, "::ffff:127.0.0.1"), 1);
	ck_assert_int_eq(cidr_list_match(l, "::FFFF:192.0.2.77"), 1);
	ck_assert_int_eq(cidr_list_match(l, "[::ffff:192.0.2.77]"), 1);
	ck_assert_int_eq(cidr_list_match(l, "::ffff:192.0.3.1"), 0);
	/* Not mapped: IPv4-compatible and NAT64 forms are different addresses. */
	ck_assert_int_eq(cidr_list_match(l, "::127.0.0.1"), 0);
	ck_assert_int_eq(cidr_list_match(l, "64:ff9b::127.0.0.1"), 0);
	cidr_list_free(l);
}
END_TEST

START_TEST(test_prefix_edges)
{
	struct cidr_list *l = parse_ok("0.0.0.0/0");

	ck_assert_int_eq(cidr_list_match(l, "1.2.3.4"), 1);
	ck_assert_int_eq(cidr_list_match(l, "::1"), 0);
	cidr_list_free(l);
	l = parse_ok("::/0");
	ck_assert_int_eq(cidr_list_match(l, "2001:db8::1"), 1);
	cidr_list_free(l);
	l = parse_ok("10.0.0.128/25 10.0.0.1/32");
	ck_assert_int_eq(cidr_list_match(l, "10.0.0.200"), 1);
	ck_assert_int_eq(cidr_list_match(l, "10.0.0.127"), 0);
	ck_assert_int_eq(cidr_list_match(l, "10.0.0.1"), 1);
	cidr_list_free(l);
	l = parse_ok("2001:db8::8000/113");
	ck_assert_int_eq(cidr_list_match(l, "2001:db8::ffff"), 1);
	ck_assert_int_eq(cidr_list_match(l, "2001:db8::7fff"), 0);
	cidr_list_free(l);
}
END_TEST

START_TEST(test_empty_list)
{
	struct cidr_list *l = parse_ok("");

	ck_assert_int_eq(cidr_list_match(l, "127.0.0.1"), 0);
	cidr_list_free(l);
	l = parse_ok(" , ");
	ck_assert_int_eq(cidr_list_match(l, "::1"), 0);
	cidr_list_free(l);
	ck_assert_int_eq(cidr_list_match(NULL, "127.0.0.1"), 0);
	cidr_list_free(NULL);
}
END_TEST

START_TEST(test_bad_entries)
{
	static const char *bad[] = {
		"10.1.2.3/8",	  /* host bits set */
		"127.0.0.1/0",	  /* host bits set */
		"2001:db8::1/32", /* host bits set */
		"10.0.0.0/33",
		"::/129",
		"10.0.0.0/",
		"10.0.0.0/-1",
		"10.0.0.0/+8",
		"10.0.0.0/8x",
		"10.1", /* shorthand not accepted */
		"256.0.0.0",
		"1.2.3.4.5",
		"localhost",
		"[10.0.0.0]/8",
		"[::1",
		"::1]",
		"[]",
		"[::1/128]",
		"fe80::1%eth0",
		"0x7f.0.0.1",
		"127.0.0.0/8/8",
		"127.0.0.0/8 bogus", /* one bad entry rejects the whole list */
		"1.2.3.4/99999999999999999999999",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[128] = "";
		struct cidr_list *l = cidr_list_parse(bad[i], err, sizeof(err));

		ck_assert_msg(l == NULL, "accepted bad list \"%s\"", bad[i]);
		ck_assert_msg(err[0] != '\0', "no error text for \"%s\"", bad[i]);
	}
}
END_TEST

START_TEST(test_err_bounded)
{
	char entry[400], err[32];

	memset(entry, 'x', sizeof(entry) - 1);
	entry[sizeof(entry) - 1] = '\0';
	memset(err, 'Q', sizeof(err));
	ck_assert_ptr_null(cidr_list_parse(entry, err, sizeof(err)));
	ck_assert_ptr_nonnull(memchr(err, '\0', sizeof(err)));
	ck_assert_ptr_null(cidr_list_parse("bad", err, 0));
}
END_TEST

START_TEST(test_hostile_clients)
{
	struct cidr_list *l = parse_ok("0.0.0.0/0 ::/0");
	char big[300];

	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(cidr_list_match(l, ""), 0);
	ck_assert_int_eq(cidr_list_match(l, NULL), 0);
	ck_assert_int_eq(cidr_list_match(l, "["), 0);
	ck_assert_int_eq(cidr_list_match(l, "[]"), 0);
	ck_assert_int_eq(cidr_list_match(l, "]"), 0);
	ck_assert_int_eq(cidr_list_match(l, "localhost"), 0);
	ck_assert_int_eq(cidr_list_match(l, "1.2.3.4 "), 0);
	ck_assert_int_eq(cidr_list_match(l, "1.2.3.4/8"), 0);
	ck_assert_int_eq(cidr_list_match(l, big), 0);
	ck_assert_int_eq(cidr_list_match(l, "1.2.3.4"), 1);
	cidr_list_free(l);
}
END_TEST

static Suite *cidr_suite(void)
{
	Suite *s = suite_create("cidr");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_v4);
	tcase_add_test(tc, test_v6);
	tcase_add_test(tc, test_v4_mapped);
	tcase_add_test(tc, test_prefix_edges);
	tcase_add_test(tc, test_empty_list);
	tcase_add_test(tc, test_bad_entries);
	tcase_add_test(tc, test_err_bounded);
	tcase_add_test(tc, test_hostile_clients);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cidr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
