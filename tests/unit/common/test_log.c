/*
 * Unit tests for common/log.c: the stderr line format, scrubbing of control
 * characters (no forged log lines), the bound on line length, verbose and
 * debug gating, errno preservation, and the exit behaviour of log_fatal
 * (exit 1) and log_panic (abort).  Output is captured by pointing fd 2 at a
 * temporary file; Check runs each test in its own process.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static int capture_fd = -1;

/* Send fd 2 to a fresh temporary file. */
static void capture_start(void)
{
	char path[] = "/tmp/tern-test-log-XXXXXX";

	capture_fd = mkstemp(path);
	ck_assert_int_ge(capture_fd, 0);
	unlink(path);
	ck_assert_int_eq(dup2(capture_fd, STDERR_FILENO), STDERR_FILENO);
}

/* Everything written to fd 2 since capture_start, NUL-terminated. */
static char *capture_text(size_t *lenp)
{
	static char out[16384];
	ssize_t n = pread(capture_fd, out, sizeof(out) - 1, 0);

	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	if (lenp != NULL)
		*lenp = (size_t)n;
	return out;
}

static void expect_output(const char *level, const char *text)
{
	char want[4096];

	snprintf(want, sizeof(want), "tern/test[%ld]: %s: %s\n", (long)getpid(), level, text);
	ck_assert_str_eq(capture_text(NULL), want);
}

START_TEST(test_format)
{
	capture_start();
	log_open("tern/test", LOG_TO_STDERR);
	log_info("hello %d <%s>", 42, "x@y");
	expect_output("info", "hello 42 <x@y>");
}
END_TEST

/* The pid in the prefix is kept between lines, and a forked child's lines
 * carry the child's pid, not the one its parent had kept. */
START_TEST(test_pid_after_fork)
{
	char want[256];
	pid_t pid;
	int st;

	capture_start();
	log_open("tern/test", LOG_TO_STDERR);
	log_info("parent");
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		log_info("child");
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	log_info("parent again");
	snprintf(want, sizeof(want), "tern/test[%ld]: info: parent\ntern/test[%ld]: info: child\n"
		 "tern/test[%ld]: info: parent again\n", (long)getpid(), (long)pid, (long)getpid());
	ck_assert_str_eq(capture_text(NULL), want);
}
END_TEST

START_TEST(test_levels)
{
	char want[512];
	long pid = (long)getpid();

	capture_start();
	log_open("tern/test", LOG_TO_STDERR);
	log_warning("w");
	log_debug("hidden");
	log_set_verbose(1);
	ck_assert_int_eq(log_verbose(), 1);
	log_debug("shown");
	log_set_verbose(0);
	ck_assert_int_eq(log_verbose(), 0);
	log_debug("hidden again");
	snprintf(want, sizeof(want), "tern/test[%ld]: warning: w\ntern/test[%ld]: debug: shown\n", pid, pid);
	ck_assert_str_eq(capture_text(NULL), want);
}
END_TEST

START_TEST(test_scrub)
{
	capture_start();
	log_open("tern/test", LOG_TO_STDERR);
	log_warning("from=<%s>", "a\r\nFeb 1 host tern[1]: forged\tx\x1b[31m\x7f\x01 caf\xc3\xa9");
	expect_output("warning", "from=<a??Feb 1 host tern[1]: forged?x?[31m?? caf\xc3\xa9>");
}
END_TEST

START_TEST(test_one_line_per_message)
{
	size_t len;
	char *out;
	int newlines = 0;

	capture_start();
	log_open("tern/test", LOG_TO_STDERR);
	log_info("%s", "line1\nline2\nline3\n");
	out = capture_text(&len);
	for (size_t i = 0; i < len; i++)
		newlines += out[i] == '\n';
	ck_assert_int_eq(newlines, 1);
	ck_assert_int_eq(out[len - 1], '\n');
}
END_TEST

START_TEST(test_long_line_bounded)
{
	static char big[10000];
	size_t len;
	char *out;

	memset(big, 'A', sizeof(big) - 1);
	capture_start();
	log_open("tern/test", LOG_TO_STDERR);
	log_info("start %s end", big);
	out = capture_text(&len);
	ck_assert_uint_le(len, 2048);
	ck_assert_uint_gt(len, 1000);
	ck_assert_int_eq(out[len - 1], '\n');
	ck_assert(memcmp(out + len - 4, "...", 3) == 0);
	ck_assert_ptr_eq(strchr(out, '\n'), out + len - 1);
	ck_assert_ptr_null(strstr(out, "end"));
}
END_TEST

START_TEST(test_long_ident)
{
	char ident[300];
	size_t len;
	char *out;

	memset(ident, 'i', sizeof(ident) - 1);
	ident[sizeof(ident) - 1] = '\0';
	capture_start();
	log_open(ident, LOG_TO_STDERR);
	log_info("x");
	out = capture_text(&len);
	ck_assert_uint_lt(len, 200);
	ck_assert_ptr_nonnull(strstr(out, "]: info: x\n"));
}
END_TEST

START_TEST(test_errno_preserved)
{
	capture_start();
	log_open("tern/test", LOG_TO_STDERR);
	errno = ENOENT;
	log_info("open: %m");
	ck_assert_int_eq(errno, ENOENT);
	expect_output("info", "open: No such file or directory");
}
END_TEST

START_TEST(test_syslog_mode_quiet_on_stderr)
{
	char want[256];

	capture_start();
	log_open("tern/test", LOG_TO_SYSLOG);
	log_info("to syslog only");
	ck_assert_str_eq(capture_text(NULL), "");
	log_set_verbose(1);
	log_info("mirrored");
	snprintf(want, sizeof(want), "tern/test[%ld]: info: mirrored\n", (long)getpid());
	ck_assert_str_eq(capture_text(NULL), want);
}
END_TEST

/* Run fn in a child with stderr captured; returns its wait status and output. */
static int run_child(void (*fn)(void), char *out, size_t outsize)
{
	char path[] = "/tmp/tern-test-log-XXXXXX";
	int fd = mkstemp(path), status;
	pid_t pid;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { 0, 0 };

		setrlimit(RLIMIT_CORE, &rl);
		dup2(fd, STDERR_FILENO);
		log_open("tern/test", LOG_TO_STDERR);
		fn();
		_exit(99); /* not reached */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	n = pread(fd, out, outsize - 1, 0);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	close(fd);
	return status;
}

static void do_fatal(void)
{
	log_fatal("cannot open %s", "/etc/tern/tern.conf");
}

static void do_panic(void)
{
	log_panic("impossible state %d", 3);
}

START_TEST(test_fatal_exits_1)
{
	char out[512];
	int status = run_child(do_fatal, out, sizeof(out));

	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	ck_assert_ptr_nonnull(strstr(out, ": fatal: cannot open /etc/tern/tern.conf\n"));
}
END_TEST

START_TEST(test_panic_aborts)
{
	char out[512];
	int status = run_child(do_panic, out, sizeof(out));

	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGABRT);
	ck_assert_ptr_nonnull(strstr(out, ": panic: impossible state 3\n"));
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_pid_after_fork);
	tcase_add_test(tc, test_levels);
	tcase_add_test(tc, test_scrub);
	tcase_add_test(tc, test_one_line_per_message);
	tcase_add_test(tc, test_long_line_bounded);
	tcase_add_test(tc, test_long_ident);
	tcase_add_test(tc, test_errno_preserved);
	tcase_add_test(tc, test_syslog_mode_quiet_on_stderr);
	tcase_add_test(tc, test_fatal_exits_1);
	tcase_add_test(tc, test_panic_aborts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
