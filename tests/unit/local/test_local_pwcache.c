/*
 * Unit tests for local/local_pwcache.c: the local agent's short-lived
 * passwd cache.  A fake getpwnam (counting its calls, answering found / no
 * such user / failed on demand) and a fake monotonic clock stand in for
 * the real ones, so the tests can check that an entry is served from the
 * cache within LOCAL_PW_TTL_MS and looked up afresh at the TTL, that a
 * failed lookup and "no such user" are never remembered, that the strings
 * are copied out of getpwnam's static result, that the cache stays bounded
 * (LOCAL_PW_CACHE entries, the oldest gives way), that an over-long entry
 * is an error and not a truncated copy, and that local_ident_user goes
 * through the cache.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../local/local.h"
#include "conf.h"
#include "log.h"

enum fake_mode { FAKE_FOUND, FAKE_NO_USER, FAKE_FAIL };

static enum fake_mode mode;
static int fake_errno;
static int calls;
static long long now_ms;
static struct passwd fake;
static char fake_name[ADDR_SIZE];
static char fake_dir[PATH_MAX + 16];
static char fake_shell[64];
static uid_t fake_uid;

/* getpwnam stand-in: the answer mode says; the entry is static, as
 * getpwnam's is, and its home is /home/NAME unless a test changed it. */
static struct passwd *fake_getpwnam(const char *name)
{
	calls++;
	if (mode == FAKE_NO_USER) {
		errno = ENOENT;
		return NULL;
	}
	if (mode == FAKE_FAIL) {
		errno = fake_errno;
		return NULL;
	}
	snprintf(fake_name, sizeof(fake_name), "%s", name);
	fake.pw_name = fake_name;
	fake.pw_uid = fake_uid;
	fake.pw_gid = 4321;
	fake.pw_dir = fake_dir;
	fake.pw_shell = fake_shell;
	return &fake;
}

static long long fake_clock(void)
{
	return now_ms;
}

static void setup(void)
{
	log_open("test_local_pwcache", LOG_TO_STDERR);
	conf_defaults();
	mode = FAKE_FOUND;
	fake_errno = EIO;
	calls = 0;
	now_ms = 1000000;
	fake_uid = geteuid() == 0 ? 1234 : geteuid();
	snprintf(fake_dir, sizeof(fake_dir), "/home/one");
	snprintf(fake_shell, sizeof(fake_shell), "/bin/sh");
	local_pw_set_source(fake_getpwnam, fake_clock);
}

static void teardown(void)
{
	local_pw_set_source(NULL, NULL);
}

START_TEST(test_hit_within_ttl)
{
	struct local_pw pw;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(pw.name, "alice");
	ck_assert_str_eq(pw.dir, "/home/one");
	ck_assert_int_eq((int)pw.uid, (int)fake_uid);
	ck_assert_int_eq((int)pw.gid, 4321);

	/* The passwd file changes; within the TTL the cached entry answers. */
	snprintf(fake_dir, sizeof(fake_dir), "/home/two");
	now_ms += LOCAL_PW_TTL_MS - 1;
	memset(&pw, 0, sizeof(pw));
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(pw.dir, "/home/one");
	ck_assert_str_eq(pw.shell, "/bin/sh");
}
END_TEST

START_TEST(test_expires_at_ttl)
{
	struct local_pw pw;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	snprintf(fake_dir, sizeof(fake_dir), "/home/two");
	now_ms += LOCAL_PW_TTL_MS;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	ck_assert_int_eq(calls, 2);
	ck_assert_str_eq(pw.dir, "/home/two"); /* the change is seen */
	/* ...and the new entry is cached from its own lookup time on. */
	now_ms += LOCAL_PW_TTL_MS - 1;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	ck_assert_int_eq(calls, 2);
}
END_TEST

START_TEST(test_clock_backwards_expires)
{
	struct local_pw pw;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	now_ms -= 1;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	ck_assert_int_eq(calls, 2);
}
END_TEST

START_TEST(test_failure_not_cached)
{
	struct local_pw pw;
	mode = FAKE_FAIL;
	fake_errno = EIO;
	errno = 0;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), -1);
	ck_assert_int_eq(errno, EIO);
	ck_assert_int_eq(local_pw_lookup("alice", &pw), -1);
	ck_assert_int_eq(calls, 2); /* tried again at once */
	/* The database is back: the very next lookup finds the user. */
	mode = FAKE_FOUND;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	ck_assert_int_eq(calls, 3);
	ck_assert_str_eq(pw.name, "alice");
}
END_TEST

START_TEST(test_failure_does_not_hide_cached)
{
	/* A failure for one user neither evicts nor replaces another's entry
	 * and is not mistaken for "no such user". */
	struct local_pw pw;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	mode = FAKE_FAIL;
	fake_errno = EMFILE;
	ck_assert_int_eq(local_pw_lookup("bob", &pw), -1);
	ck_assert_int_eq(errno, EMFILE);
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	ck_assert_int_eq(calls, 2);
}
END_TEST

START_TEST(test_no_such_user_not_cached)
{
	struct local_pw pw;
	mode = FAKE_NO_USER;
	ck_assert_int_eq(local_pw_lookup("newbie", &pw), 0);
	/* The admin creates the user: the next message finds it at once,
	 * without waiting for any TTL. */
	mode = FAKE_FOUND;
	ck_assert_int_eq(local_pw_lookup("newbie", &pw), 1);
	ck_assert_int_eq(calls, 2);
	ck_assert_str_eq(pw.name, "newbie");
}
END_TEST

START_TEST(test_no_such_user_errnos)
{
	/* getpwnam(3) may report "not found" with errno 0 or one of these. */
	static const int notfound[] = { 0, ENOENT, ESRCH, EBADF, EPERM };
	struct local_pw pw;
	mode = FAKE_FAIL;
	for (size_t i = 0; i < sizeof(notfound) / sizeof(notfound[0]); i++) {
		fake_errno = notfound[i];
		ck_assert_int_eq(local_pw_lookup("ghost", &pw), 0);
	}
	fake_errno = ENOMEM;
	ck_assert_int_eq(local_pw_lookup("ghost", &pw), -1);
}
END_TEST

START_TEST(test_strings_copied)
{
	struct local_pw pw, again;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	/* getpwnam's static buffers are reused by the next lookup. */
	memset(fake_name, 'X', 8);
	memset(fake_dir, 'Y', 8);
	ck_assert_str_eq(pw.name, "alice");
	ck_assert_str_eq(pw.dir, "/home/one");
	ck_assert_int_eq(local_pw_lookup("alice", &again), 1);
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(again.name, "alice");
	ck_assert_str_eq(again.dir, "/home/one");
}
END_TEST

START_TEST(test_bounded_oldest_evicted)
{
	struct local_pw pw;
	char name[32];
	for (int i = 0; i < LOCAL_PW_CACHE; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		ck_assert_int_eq(local_pw_lookup(name, &pw), 1);
		now_ms += 1;
	}
	ck_assert_int_eq(calls, LOCAL_PW_CACHE);
	/* All of them are cached... */
	for (int i = 0; i < LOCAL_PW_CACHE; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		ck_assert_int_eq(local_pw_lookup(name, &pw), 1);
		ck_assert_str_eq(pw.name, name);
	}
	ck_assert_int_eq(calls, LOCAL_PW_CACHE);
	/* ...one more pushes out the oldest (user0), and only it. */
	ck_assert_int_eq(local_pw_lookup("extra", &pw), 1);
	ck_assert_int_eq(calls, LOCAL_PW_CACHE + 1);
	ck_assert_int_eq(local_pw_lookup("user1", &pw), 1);
	ck_assert_int_eq(local_pw_lookup("extra", &pw), 1);
	ck_assert_int_eq(calls, LOCAL_PW_CACHE + 1);
	ck_assert_int_eq(local_pw_lookup("user0", &pw), 1);
	ck_assert_int_eq(calls, LOCAL_PW_CACHE + 2);
	ck_assert_str_eq(pw.name, "user0");
}
END_TEST

START_TEST(test_distinct_users_distinct_entries)
{
	struct local_pw pw;
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	snprintf(fake_dir, sizeof(fake_dir), "/home/bob");
	ck_assert_int_eq(local_pw_lookup("bob", &pw), 1);
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1);
	ck_assert_str_eq(pw.name, "alice");
	ck_assert_str_eq(pw.dir, "/home/one");
	ck_assert_int_eq(local_pw_lookup("bob", &pw), 1);
	ck_assert_str_eq(pw.dir, "/home/bob");
	ck_assert_int_eq(calls, 2);
}
END_TEST

START_TEST(test_too_long_is_error)
{
	struct local_pw pw;
	memset(fake_dir, 'd', sizeof(fake_dir) - 1);
	fake_dir[0] = '/';
	fake_dir[sizeof(fake_dir) - 1] = '\0';
	ck_assert_int_eq(local_pw_lookup("alice", &pw), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	snprintf(fake_dir, sizeof(fake_dir), "/home/one");
	ck_assert_int_eq(local_pw_lookup("alice", &pw), 1); /* and not cached */
	ck_assert_int_eq(calls, 2);
}
END_TEST

START_TEST(test_ident_user_uses_cache)
{
	struct local_ident id;
	struct deliver_rcpt rc;
	memset(&rc, 0, sizeof(rc));
	snprintf(fake_dir, sizeof(fake_dir), "/home/carol");
	ck_assert_int_eq(local_ident_user("carol", &id, &rc), 0);
	ck_assert_int_eq(local_ident_user("carol", &id, &rc), 0);
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(id.home, "/home/carol");
	ck_assert_int_eq((int)id.uid, (int)fake_uid);

	/* A lookup failure is a temporary error for the recipient. */
	mode = FAKE_FAIL;
	ck_assert_int_eq(local_ident_user("dave", &id, &rc), -1);
	ck_assert_int_eq(rc.status, DELIVER_TEMP);
	ck_assert_str_eq(rc.dsn, "4.3.0");
	mode = FAKE_NO_USER;
	ck_assert_int_eq(local_ident_user("dave", &id, &rc), -1);
	ck_assert_int_eq(rc.status, DELIVER_PERM);
	ck_assert_str_eq(rc.dsn, "5.1.1");
}
END_TEST

static Suite *pwcache_suite(void)
{
	Suite *s = suite_create("local_pwcache");
	TCase *tc = tcase_create("pwcache");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_hit_within_ttl);
	tcase_add_test(tc, test_expires_at_ttl);
	tcase_add_test(tc, test_clock_backwards_expires);
	tcase_add_test(tc, test_failure_not_cached);
	tcase_add_test(tc, test_failure_does_not_hide_cached);
	tcase_add_test(tc, test_no_such_user_not_cached);
	tcase_add_test(tc, test_no_such_user_errnos);
	tcase_add_test(tc, test_strings_copied);
	tcase_add_test(tc, test_bounded_oldest_evicted);
	tcase_add_test(tc, test_distinct_users_distinct_entries);
	tcase_add_test(tc, test_too_long_is_error);
	tcase_add_test(tc, test_ident_user_uses_cache);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pwcache_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
