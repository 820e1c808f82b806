/*
 * test_cdbmap — compile text tables to cdb and look them up: case
 * folding, continuation lines, missing keys, values larger than the
 * caller's buffer, re-opening after a rebuild, and every rejected input
 * (with its exact "file:line: reason", leaving no dst.tmp behind and the
 * previous table untouched).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdbmap.h"
#include "log.h"

static char dir[64], src[128], dst[128], tmp[140];
static char err[512];

static void setup(void)
{
	strcpy(dir, "/tmp/test_cdbmap_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/table", dir);
	snprintf(dst, sizeof(dst), "%s/table.cdb", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	log_open("test_cdbmap", LOG_TO_STDERR);
}

static void teardown(void)
{
	unlink(src);
	unlink(dst);
	unlink(tmp);
	rmdir(dir);
}

static void write_src(const char *text, size_t n)
{
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
	close(fd);
}

static void compile_ok(const char *text)
{
	write_src(text, strlen(text));
	ck_assert_msg(cdbmap_compile(src, dst, err, sizeof(err)) == 0, "compile: %s", err);
}

static void compile_err(const char *text, size_t n, int line, const char *reason)
{
	char want[600];

	write_src(text, n ? n : strlen(text)); /* n == 0: a C string */
	ck_assert_int_eq(cdbmap_compile(src, dst, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:%d: %s", src, line, reason);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(access(tmp, F_OK), -1);
}

static void expect(struct cdbmap *m, const char *key, const char *want)
{
	struct buf v;

	buf_init(&v, 1024);
	if (want == NULL) {
		ck_assert_int_eq(cdbmap_lookup(m, key, &v), 0);
	} else {
		ck_assert_int_eq(cdbmap_lookup(m, key, &v), 1);
		ck_assert_str_eq(v.data, want);
	}
	buf_free(&v);
}

START_TEST(test_compile_lookup)
{
	struct cdbmap *m;

	compile_ok("# transport table\n\nexample.com   smtp:[10.0.0.1]:25\n"
		   "Example.ORG\tlocal\n"
		   "list  a@example.com,\n   b@example.com,\n\tc@example.com\n"
		   "spaces   value with   inner  spaces   \n"
		   "utf8.\xc3\xa6\xc3\xb8 x\n");
	m = cdbmap_open(dst);
	ck_assert_ptr_nonnull(m);
	expect(m, "example.com", "smtp:[10.0.0.1]:25");
	expect(m, "EXAMPLE.COM", "smtp:[10.0.0.1]:25");
	expect(m, "example.org", "local");
	expect(m, "Example.Org", "local");
	expect(m, "list", "a@example.com, b@example.com, c@example.com");
	expect(m, "spaces", "value with   inner  spaces");
	expect(m, "utf8.\xc3\xa6\xc3\xb8", "x");
	expect(m, "missing", NULL);
	expect(m, "", NULL);
	expect(m, "example", NULL);
	expect(m, "#", NULL);
	cdbmap_close(m);
}
END_TEST

START_TEST(test_value_too_big)
{
	struct cdbmap *m;
	struct buf v;

	compile_ok("k 0123456789\n");
	m = cdbmap_open(dst);
	ck_assert_ptr_nonnull(m);
	buf_init(&v, 5);
	ck_assert_int_eq(cdbmap_lookup(m, "k", &v), -1);
	buf_free(&v);
	buf_init(&v, 10);
	ck_assert_int_eq(cdbmap_lookup(m, "k", &v), 1);
	ck_assert_str_eq(v.data, "0123456789");
	buf_free(&v);
	cdbmap_close(m);
}
END_TEST

START_TEST(test_reopen_after_rebuild)
{
	struct cdbmap *m;

	compile_ok("a old\n");
	m = cdbmap_open(dst);
	ck_assert_ptr_nonnull(m);
	expect(m, "a", "old");
	compile_ok("a new\nb added\n");
	/* the file is checked at most once a second */
	usleep(1100 * 1000);
	expect(m, "a", "new");
	expect(m, "b", "added");
	/* a removed table keeps serving the last good version */
	unlink(dst);
	usleep(1100 * 1000);
	expect(m, "a", "new");
	cdbmap_close(m);
}
END_TEST

START_TEST(test_bad_input)
{
	static const char nul[] = "a b\nc d\0e\n";
	char *big;

	compile_err("a 1\nb 2\nA 3\n", 0, 3, "duplicate key \"a\"");
	compile_err("  orphan\n", 0, 1, "continuation line without a key");
	compile_err("# c\n\n a\n", 0, 3, "continuation line without a key");
	compile_err("a 1\nlonely\nb 2\n", 0, 2, "key \"lonely\" has no value");
	compile_err("a 1\nlonely   \n", 0, 2, "key \"lonely\" has no value");
	compile_err(nul, sizeof(nul) - 1, 2, "NUL byte in line");
	compile_err("a b\rc\n", 0, 1, "control character in line");
	compile_err("a b\x1b[31m\n", 0, 1, "control character in line");

	big = malloc(10000);
	memset(big, 'x', 9000);
	memcpy(big, "a 1\nb ", 6);
	big[9000] = '\n';
	compile_err(big, 9001, 2, "line too long (max 8192 bytes)");
	/* a long key */
	memset(big, 'k', 2000);
	memcpy(big + 2000, " v\n", 3);
	compile_err(big, 2003, 1, "key too long (max 1024 bytes)");
	free(big);

	ck_assert_int_eq(cdbmap_compile("/nonexistent/x", dst, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/nonexistent/x: No such file or directory");
}
END_TEST

START_TEST(test_failed_build_keeps_old_table)
{
	struct cdbmap *m;

	compile_ok("a good\n");
	write_src("a 1\na 2\n", 8);
	ck_assert_int_eq(cdbmap_compile(src, dst, err, sizeof(err)), -1);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	m = cdbmap_open(dst);
	ck_assert_ptr_nonnull(m);
	expect(m, "a", "good");
	cdbmap_close(m);
}
END_TEST

START_TEST(test_mode_follows_source)
{
	struct stat st;

	compile_ok("user secret\n");
	chmod(src, 0600);
	ck_assert_int_eq(cdbmap_compile(src, dst, err, sizeof(err)), 0);
	ck_assert_int_eq(stat(dst, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	chmod(src, 0644);
	ck_assert_int_eq(cdbmap_compile(src, dst, err, sizeof(err)), 0);
	ck_assert_int_eq(stat(dst, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0644);
}
END_TEST

START_TEST(test_empty_table)
{
	struct cdbmap *m;

	compile_ok("# nothing\n");
	m = cdbmap_open(dst);
	ck_assert_ptr_nonnull(m);
	expect(m, "a", NULL);
	cdbmap_close(m);
}
END_TEST

START_TEST(test_open_errors)
{
	errno = 0;
	ck_assert_ptr_null(cdbmap_open("/nonexistent/x.cdb"));
	ck_assert_int_eq(errno, ENOENT);
	/* not a cdb file (too short for the header) */
	write_src("junk", 4);
	ck_assert_ptr_null(cdbmap_open(src));
}
END_TEST

static Suite *cdbmap_suite(void)
{
	Suite *s = suite_create("cdbmap");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_compile_lookup);
	tcase_add_test(tc, test_value_too_big);
	tcase_add_test(tc, test_reopen_after_rebuild);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_failed_build_keeps_old_table);
	tcase_add_test(tc, test_mode_follows_source);
	tcase_add_test(tc, test_empty_table);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cdbmap_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
