/*
 * Unit tests for common/buf.c: the bounded string type's limits (every
 * failing append leaves the buffer unchanged), NUL-safety, growth past the
 * initial allocation, printf formatting at and over the maximum, and
 * str_copy's truncation report.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

START_TEST(test_init_empty)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	ck_assert_uint_eq(b.max, 10);
	buf_free(&b);
	ck_assert_ptr_null(b.data);

	buf_init(&b, 0);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_int_eq(b.data[0], '\0');
	ck_assert_int_eq(buf_putc(&b, 'x'), -1);
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
	ck_assert_int_eq(buf_printf(&b, "%d", 1), -1);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_append_limits)
{
	struct buf b;

	buf_init(&b, 8);
	ck_assert_int_eq(buf_puts(&b, "abc"), 0);
	ck_assert_int_eq(buf_append(&b, "defgh", 5), 0); /* exactly max */
	ck_assert_str_eq(b.data, "abcdefgh");
	ck_assert_uint_eq(b.len, 8);
	ck_assert_int_eq(buf_putc(&b, 'x'), -1);
	ck_assert_int_eq(buf_puts(&b, "x"), -1);
	ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX), -1); /* must not wrap around */
	ck_assert_str_eq(b.data, "abcdefgh");
	ck_assert_uint_eq(b.len, 8);
	ck_assert_uint_le(b.cap, 9);
	buf_free(&b);
}
END_TEST

START_TEST(test_binary)
{
	struct buf b;

	buf_init(&b, 100);
	ck_assert_int_eq(buf_append(&b, "a\0b", 3), 0);
	ck_assert_int_eq(buf_putc(&b, 0), 0);
	ck_assert_int_eq(buf_putc(&b, 0xff), 0);
	ck_assert_uint_eq(b.len, 5);
	ck_assert(memcmp(b.data, "a\0b\0\xff", 5) == 0);
	ck_assert_int_eq(b.data[5], '\0');
	buf_free(&b);
}
END_TEST

START_TEST(test_growth)
{
	struct buf b;
	char chunk[1000];

	memset(chunk, 'z', sizeof(chunk));
	buf_init(&b, 100000);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
	ck_assert_uint_eq(b.len, 100000);
	ck_assert_uint_le(b.cap, 100001);
	ck_assert_int_eq(b.data[b.len], '\0');
	ck_assert_int_eq(b.data[99999], 'z');
	ck_assert_int_eq(buf_putc(&b, 'z'), -1);
	buf_free(&b);
}
END_TEST

START_TEST(test_printf)
{
	struct buf b;

	buf_init(&b, 4096);
	ck_assert_int_eq(buf_printf(&b, "%s=%d", "x", 42), 0);
	ck_assert_str_eq(b.data, "x=42");
	/* Longer than the initial allocation: the second formatting pass. */
	ck_assert_int_eq(buf_printf(&b, "%300d|", 7), 0);
	ck_assert_uint_eq(b.len, 4 + 301);
	ck_assert_int_eq(b.data[b.len - 1], '|');
	ck_assert_int_eq(b.data[b.len - 2], '7');
	ck_assert_int_eq(b.data[b.len], '\0');
	buf_free(&b);
}
END_TEST

START_TEST(test_printf_over_max)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_int_eq(buf_puts(&b, "abcde"), 0);
	ck_assert_int_eq(buf_printf(&b, "%s", "123456"), -1);
	ck_assert_str_eq(b.data, "abcde");
	ck_assert_uint_eq(b.len, 5);
	ck_assert_int_eq(buf_printf(&b, "%s", "12345"), 0); /* exactly max */
	ck_assert_str_eq(b.data, "abcde12345");
	ck_assert_int_eq(buf_printf(&b, "%c", 'x'), -1);
	ck_assert_str_eq(b.data, "abcde12345");
	ck_assert_uint_le(b.cap, 11);
	buf_free(&b);

	/* Far over max, with room allocated: nothing may be written past len visibly. */
	buf_init(&b, 1000);
	ck_assert_int_eq(buf_puts(&b, "keep"), 0);
	ck_assert_int_eq(buf_printf(&b, "%5000d", 1), -1);
	ck_assert_str_eq(b.data, "keep");
	ck_assert_uint_eq(b.len, 4);
	ck_assert_uint_le(b.cap, 1001);
	buf_free(&b);
}
END_TEST

START_TEST(test_set_reset_truncate)
{
	struct buf b;

	buf_init(&b, 5);
	ck_assert_int_eq(buf_set(&b, "hello"), 0);
	ck_assert_int_eq(buf_set(&b, "toolong"), -1);
	ck_assert_str_eq(b.data, "hello");
	buf_truncate(&b, 10);
	ck_assert_str_eq(b.data, "hello");
	buf_truncate(&b, 2);
	ck_assert_str_eq(b.data, "he");
	ck_assert_uint_eq(b.len, 2);
	buf_reset(&b);
	ck_assert_str_eq(b.data, "");
	ck_assert_uint_eq(b.max, 5);
	ck_assert_int_eq(buf_set(&b, ""), 0);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_consume)
{
	struct buf b;

	buf_init(&b, 32);
	ck_assert_int_eq(buf_puts(&b, "line1\r\nline2"), 0);
	buf_consume(&b, 7);
	ck_assert_str_eq(b.data, "line2");
	ck_assert_uint_eq(b.len, 5);
	buf_consume(&b, 0);
	ck_assert_str_eq(b.data, "line2");
	buf_consume(&b, 100);
	ck_assert_str_eq(b.data, "");
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_str_copy)
{
	char dst[6];

	ck_assert_int_eq(str_copy(dst, sizeof(dst), "hello"), 0);
	ck_assert_str_eq(dst, "hello");
	ck_assert_int_eq(str_copy(dst, sizeof(dst), "hello!"), -1);
	ck_assert_str_eq(dst, "hello");
	ck_assert_int_eq(str_copy(dst, sizeof(dst), ""), 0);
	ck_assert_str_eq(dst, "");
	dst[0] = 'q';
	ck_assert_int_eq(str_copy(dst, 0, "x"), -1);
	ck_assert_int_eq(dst[0], 'q');
	ck_assert_int_eq(str_copy(dst, 1, "x"), -1);
	ck_assert_str_eq(dst, "");
}
END_TEST

static Suite *buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_init_empty);
	tcase_add_test(tc, test_append_limits);
	tcase_add_test(tc, test_binary);
	tcase_add_test(tc, test_growth);
	tcase_add_test(tc, test_printf);
	tcase_add_test(tc, test_printf_over_max);
	tcase_add_test(tc, test_set_reset_truncate);
	tcase_add_test(tc, test_consume);
	tcase_add_test(tc, test_str_copy);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(buf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
