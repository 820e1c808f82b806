/*
 * Unit tests for common/queueid.c: format, validation of hostile strings,
 * ordering and uniqueness across many calls in one process and across
 * several fork()ed processes generating at the same time.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queueid.h"

#define MANY 5000
#define NPROC 4
#define PER_PROC 1000

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_format)
{
	char id[QUEUEID_SIZE];
	char pidhex[16];

	memset(id, 'Z', sizeof(id));
	queueid_new(id);
	ck_assert_uint_eq(strlen(id), QUEUEID_LEN);
	ck_assert_int_eq(queueid_valid(id), 1);
	snprintf(pidhex, sizeof(pidhex), "%07X", (unsigned)getpid());
	ck_assert_str_eq(id + 13, pidhex);
	/* The microsecond field never exceeds 999999 (0xF423F). */
	ck_assert(strncmp(id + 8, "F4240", 5) < 0);
}
END_TEST

START_TEST(test_valid)
{
	ck_assert_int_eq(queueid_valid("0123456789ABCDEF0123"), 1);
	ck_assert_int_eq(queueid_valid("0123456789abcdef0123"), 0);
	ck_assert_int_eq(queueid_valid("0123456789ABCDEF012"), 0);
	ck_assert_int_eq(queueid_valid("0123456789ABCDEF01234"), 0);
	ck_assert_int_eq(queueid_valid("0123456789ABCDEF012G"), 0);
	ck_assert_int_eq(queueid_valid("../../../etc/passwd0"), 0);
	ck_assert_int_eq(queueid_valid("0123456789ABCDEF012/"), 0);
	ck_assert_int_eq(queueid_valid("0123456789\0BCDEF0123"), 0);
	ck_assert_int_eq(queueid_valid(""), 0);
	ck_assert_int_eq(queueid_valid(NULL), 0);
}
END_TEST

START_TEST(test_unique_in_process)
{
	static char ids[MANY][QUEUEID_SIZE];

	for (int i = 0; i < MANY; i++) {
		queueid_new(ids[i]);
		ck_assert_int_eq(queueid_valid(ids[i]), 1);
		/* Same pid throughout, so IDs must be strictly increasing. */
		if (i > 0)
			ck_assert_int_lt(strcmp(ids[i - 1], ids[i]), 0);
	}
}
END_TEST

/* Child: generate PER_PROC IDs and write them to fd. */
static void gen_child(int fd)
{
	for (int i = 0; i < PER_PROC; i++) {
		char id[QUEUEID_SIZE];

		queueid_new(id);
		if (write(fd, id, QUEUEID_LEN) != QUEUEID_LEN)
			_exit(2);
	}
	_exit(0);
}

/* Read exactly n bytes. */
static void read_full(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);

		ck_assert_int_gt(r, 0);
		p += r;
		n -= (size_t)r;
	}
}

START_TEST(test_unique_across_processes)
{
	static char ids[NPROC * PER_PROC][QUEUEID_SIZE];
	int fds[NPROC];
	pid_t pids[NPROC];
	char first[QUEUEID_SIZE];

	/* The parent has issued an ID: children inherit that state and still differ. */
	queueid_new(first);
	for (int p = 0; p < NPROC; p++) {
		int pfd[2];

		ck_assert_int_eq(pipe(pfd), 0);
		pids[p] = fork();
		ck_assert_int_ge(pids[p], 0);
		if (pids[p] == 0) {
			close(pfd[0]);
			gen_child(pfd[1]);
		}
		close(pfd[1]);
		fds[p] = pfd[0];
	}
	for (int p = 0; p < NPROC; p++) {
		int status;

		for (int i = 0; i < PER_PROC; i++) {
			char *id = ids[p * PER_PROC + i];

			read_full(fds[p], id, QUEUEID_LEN);
			id[QUEUEID_LEN] = '\0';
			ck_assert_int_eq(queueid_valid(id), 1);
		}
		close(fds[p]);
		ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	qsort(ids, NPROC * PER_PROC, QUEUEID_SIZE, cmp_id);
	for (int i = 1; i < NPROC * PER_PROC; i++)
		ck_assert_str_ne(ids[i - 1], ids[i]);
	for (int i = 0; i < NPROC * PER_PROC; i++)
		ck_assert_str_ne(ids[i], first);
}
END_TEST

static Suite *queueid_suite(void)
{
	Suite *s = suite_create("queueid");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_valid);
	tcase_add_test(tc, test_unique_in_process);
	tcase_add_test(tc, test_unique_across_processes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(queueid_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
