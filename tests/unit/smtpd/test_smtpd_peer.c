/*
 * test_smtpd_peer — the per-process cache of verified client names:
 * hits within a minute, misses after it, per address, bounded in size.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../../../smtpd/smtpd.h"

START_TEST(cache_hit_within_ttl_miss_after)
{
	char name[256];

	smtpd_peer_cache_put("192.0.2.7", "mx.example", 1000000);
	ck_assert_int_eq(smtpd_peer_cache_get("192.0.2.7", 1000000 + 59999, name, sizeof(name)), 1);
	ck_assert_str_eq(name, "mx.example");
	ck_assert_int_eq(smtpd_peer_cache_get("192.0.2.7", 1000000 + 60000, name, sizeof(name)), 0);
	ck_assert_int_eq(smtpd_peer_cache_get("192.0.2.8", 1000000 + 1, name, sizeof(name)), 0);
	/* a clock that went backwards is not a hit */
	ck_assert_int_eq(smtpd_peer_cache_get("192.0.2.7", 999999, name, sizeof(name)), 0);
}
END_TEST

START_TEST(cache_replaces_and_updates)
{
	char name[256], ip[64], want[64];
	int i;

	smtpd_peer_cache_put("2001:db8::1", "old.example", 5000);
	smtpd_peer_cache_put("2001:db8::1", "new.example", 6000);
	ck_assert_int_eq(smtpd_peer_cache_get("2001:db8::1", 6001, name, sizeof(name)), 1);
	ck_assert_str_eq(name, "new.example");
	/* 20 more clients: the cache is small, the oldest entries go */
	for (i = 0; i < 20; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		snprintf(want, sizeof(want), "h%d.example", i);
		smtpd_peer_cache_put(ip, want, 7000 + i);
	}
	ck_assert_int_eq(smtpd_peer_cache_get("2001:db8::1", 7100, name, sizeof(name)), 0);
	ck_assert_int_eq(smtpd_peer_cache_get("198.51.100.0", 7100, name, sizeof(name)), 0);
	ck_assert_int_eq(smtpd_peer_cache_get("198.51.100.19", 7100, name, sizeof(name)), 1);
	ck_assert_str_eq(name, "h19.example");
	/* a name that does not fit the caller's buffer is no hit */
	ck_assert_int_eq(smtpd_peer_cache_get("198.51.100.19", 7100, name, 4), 0);
}
END_TEST

static Suite *peer_suite(void)
{
	Suite *s = suite_create("smtpd_peer");
	TCase *tc = tcase_create("cache");

	tcase_add_test(tc, cache_hit_within_ttl_miss_after);
	tcase_add_test(tc, cache_replaces_and_updates);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(peer_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
