/*
 * Unit tests for common/xalloc.c: zero-size requests still return memory,
 * string copies are exact, and size overflow ends the process with exit 1
 * (log_fatal) instead of a short allocation.  A real out-of-memory failure
 * is not provoked: sanitizer builds abort inside malloc before we see NULL.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

START_TEST(test_basic)
{
	char *p = xmalloc(0);
	int *v;
	char *s;

	ck_assert_ptr_nonnull(p);
	free(p);
	v = xcalloc(4, sizeof(int));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(v[i], 0);
	v = xreallocarray(v, 1000, sizeof(int));
	v[999] = 7;
	ck_assert_int_eq(v[999], 7);
	free(v);
	p = xrealloc(NULL, 0);
	ck_assert_ptr_nonnull(p);
	free(p);

	s = xstrdup("hello");
	ck_assert_str_eq(s, "hello");
	free(s);
	s = xstrndup("hello", 3);
	ck_assert_str_eq(s, "hel");
	free(s);
	s = xstrndup("hi", 100); /* must not read past the NUL */
	ck_assert_str_eq(s, "hi");
	free(s);
	s = xstrndup("a\0b", 3);
	ck_assert_str_eq(s, "a");
	free(s);
}
END_TEST

START_TEST(test_reallocarray_overflow)
{
	(void)xreallocarray(NULL, SIZE_MAX / 2 + 2, 2);
}
END_TEST

START_TEST(test_calloc_overflow)
{
	(void)xcalloc(SIZE_MAX / 8 + 1, 16);
}
END_TEST

static Suite *xalloc_suite(void)
{
	Suite *s = suite_create("xalloc");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_basic);
	tcase_add_exit_test(tc, test_reallocarray_overflow, 1);
	tcase_add_exit_test(tc, test_calloc_overflow, 1);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(xalloc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
