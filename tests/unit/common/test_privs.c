/*
 * Unit tests for common/privs.c.  As any user: user lookup and the no-op
 * path (dropping to the ids we already have).  As root: children that drop
 * to "nobody" (with and without chroot and supplementary groups) and verify
 * they cannot regain root, and children whose drop must fail with exit 1.
 * Every drop happens in a forked child so the test runner keeps its ids.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "privs.h"

static uid_t nobody_uid;
static gid_t nobody_gid;
static char chroot_dir[64];

/* Fork, run fn in the child with stderr silenced, return the child's exit status (or 128+signal). */
static int in_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		if (devnull >= 0)
			dup2(devnull, STDERR_FILENO);
		_exit(fn());
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* 0 when real, effective and saved ids are all uid/gid. */
static int ids_are(uid_t uid, gid_t gid)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return 10;
	if (r != uid || e != uid || s != uid)
		return 11;
	if (rg != gid || eg != gid || sg != gid)
		return 12;
	return 0;
}

/* 0 when root cannot be regained in any way we know of. */
static int cannot_regain_root(void)
{
	if (setuid(0) == 0 || seteuid(0) == 0 || setreuid(0, 0) == 0 || setresuid(0, 0, 0) == 0)
		return 20;
	if (setgid(0) == 0 || setegid(0) == 0)
		return 21;
	if (setgroups(0, NULL) == 0)
		return 22;
	if (errno != EPERM)
		return 23;
	return 0;
}

static void need_nobody(void)
{
	ck_assert_msg(privs_lookup_user("nobody", &nobody_uid, &nobody_gid) == 0, "no user nobody");
	ck_assert_uint_ne(nobody_uid, 0);
}

START_TEST(test_lookup)
{
	uid_t u = 12345;
	gid_t g = 12345;

	ck_assert_int_eq(privs_lookup_user("root", &u, &g), 0);
	ck_assert_uint_eq(u, 0);
	ck_assert_uint_eq(g, 0);
	u = 12345;
	ck_assert_int_eq(privs_lookup_user("no-such-user-tern-test", &u, &g), -1);
	ck_assert_uint_eq(u, 12345);
	ck_assert_int_eq(privs_lookup_user("", &u, &g), -1);
	ck_assert_int_eq(privs_lookup_user(NULL, &u, &g), -1);
}
END_TEST

/* Non-root, already the target: returns, changes nothing (chroot included). */
static int child_noop_self(void)
{
	char before[PATH_MAX], after[PATH_MAX];
	uid_t uid = getuid();
	gid_t gid = getgid();
	int r;

	if (geteuid() == 0) {
		/* Become an ordinary user first so the no-op path is the one under test. */
		privs_drop(nobody_uid, nobody_gid, NULL, NULL);
		uid = nobody_uid;
		gid = nobody_gid;
	}
	if (getcwd(before, sizeof(before)) == NULL)
		return 30;
	privs_drop(uid, gid, NULL, NULL);
	privs_drop(uid, gid, "/nonexistent-dev-mode-chroot", NULL);
	if ((r = ids_are(uid, gid)) != 0)
		return r;
	if (getcwd(after, sizeof(after)) == NULL || strcmp(before, after) != 0)
		return 31;
	return 0;
}

START_TEST(test_noop_self)
{
	if (geteuid() == 0)
		need_nobody();
	ck_assert_int_eq(in_child(child_noop_self), 0);
}
END_TEST

/* Non-root asking for other ids (root here) must die, never carry on. */
static int child_unprivileged_escalation(void)
{
	if (geteuid() == 0)
		privs_drop(nobody_uid, nobody_gid, NULL, NULL);
	privs_drop(0, 0, NULL, NULL);
	return 40; /* survived: wrong */
}

START_TEST(test_unprivileged_escalation_fatal)
{
	if (geteuid() == 0)
		need_nobody();
	else if (getuid() == 0)
		return;
	ck_assert_int_eq(in_child(child_unprivileged_escalation), 1);
}
END_TEST

static int child_drop_nobody(void)
{
	gid_t groups[64];
	int n, r;

	privs_drop(nobody_uid, nobody_gid, NULL, NULL);
	if ((r = ids_are(nobody_uid, nobody_gid)) != 0)
		return r;
	n = getgroups(64, groups);
	if (n < 0 || n > 1 || (n == 1 && groups[0] != nobody_gid))
		return 50;
	if ((r = cannot_regain_root()) != 0)
		return r;
	if (open("/etc/shadow", O_RDONLY) >= 0)
		return 51;
	return 0;
}

START_TEST(test_drop_to_nobody)
{
	if (geteuid() != 0)
		return; /* needs root */
	need_nobody();
	ck_assert_int_eq(in_child(child_drop_nobody), 0);
}
END_TEST

static int child_drop_chroot(void)
{
	char cwd[PATH_MAX];
	int r;

	privs_drop(nobody_uid, nobody_gid, chroot_dir, "nobody");
	if ((r = ids_are(nobody_uid, nobody_gid)) != 0)
		return r;
	if ((r = cannot_regain_root()) != 0)
		return r;
	if (getcwd(cwd, sizeof(cwd)) == NULL || strcmp(cwd, "/") != 0)
		return 60;
	if (access("/marker", F_OK) != 0)
		return 61; /* we are inside the chroot */
	if (access("/etc/passwd", F_OK) == 0)
		return 62; /* the real root is out of reach */
	if (chroot("/..") == 0)
		return 63;
	return 0;
}

START_TEST(test_drop_with_chroot_and_groups)
{
	char path[128];
	int fd;

	if (geteuid() != 0)
		return;
	need_nobody();
	snprintf(chroot_dir, sizeof(chroot_dir), "/tmp/tern-test-privs-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(chroot_dir));
	ck_assert_int_eq(chmod(chroot_dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/marker", chroot_dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(in_child(child_drop_chroot), 0);
	unlink(path);
	rmdir(chroot_dir);
}
END_TEST

static int child_bad_chroot(void)
{
	privs_drop(nobody_uid, nobody_gid, "/nonexistent-tern-chroot", NULL);
	return 70; /* survived: wrong */
}

START_TEST(test_bad_chroot_fatal)
{
	if (geteuid() != 0)
		return;
	need_nobody();
	ck_assert_int_eq(in_child(child_bad_chroot), 1);
}
END_TEST

/* Root staying root (uid 0) is allowed and must still clear the supplementary groups. */
static int child_root_clears_groups(void)
{
	gid_t groups[64], extra = 4242;
	int n;

	if (setgroups(1, &extra) < 0)
		return 80;
	privs_drop(0, 0, NULL, NULL);
	n = getgroups(64, groups);
	if (n != 1 || groups[0] != 0)
		return 81;
	return ids_are(0, 0);
}

START_TEST(test_root_clears_groups)
{
	if (geteuid() != 0)
		return;
	ck_assert_int_eq(in_child(child_root_clears_groups), 0);
}
END_TEST

static Suite *privs_suite(void)
{
	Suite *s = suite_create("privs");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_lookup);
	tcase_add_test(tc, test_noop_self);
	tcase_add_test(tc, test_unprivileged_escalation_fatal);
	tcase_add_test(tc, test_drop_to_nobody);
	tcase_add_test(tc, test_drop_with_chroot_and_groups);
	tcase_add_test(tc, test_bad_chroot_fatal);
	tcase_add_test(tc, test_root_clears_groups);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(privs_suite());
	int failed;

	if (geteuid() != 0)
		fprintf(stderr, "test_privs: not root, the privilege-drop cases only check the no-op path\n");
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
