/*
 * Unit tests for common/maildrop.c: a formatted envelope reads back
 * identically (file and stream modes, header_bytes exact), and every
 * malformed variant is rejected: bad magic/version, missing, repeated or
 * out-of-order records, junk in numbers, unknown flags, CR, NUL and control
 * characters, overlong lines, truncation, no recipient, spaces in ENVID.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildrop.h"

struct src {
	const char *p;
	size_t n, off;
};

static ssize_t rd(void *ctx, void *p, size_t n)
{
	struct src *s = ctx;
	size_t k = s->n - s->off < n ? s->n - s->off : n;

	memcpy(p, s->p + s->off, k);
	s->off += k;
	return (ssize_t)k;
}

/* md_read over data; returns its result, *e filled (caller frees). */
static int read_md(const char *data, size_t n, enum md_mode mode, struct md_env *e)
{
	struct linereader lr;
	struct src s = { data, n, 0 };
	char err[256];
	int rc;

	lr_init(&lr, rd, &s, MD_MAX_LINE, 0);
	rc = md_read(&lr, mode, e, err, sizeof(err));
	lr_free(&lr);
	return rc;
}

static const char GOOD[] = "TERNDROP 1\nU 1000\nT 1700000000\nF 4097\nN env-1\nS me@x\n"
			   "R 0 a@x\nR 3 \"a b\"@y\nL 5\nhello";

START_TEST(test_roundtrip)
{
	struct md_env e, f;
	struct buf out;

	md_env_init(&e);
	e.uid = 1000;
	e.time = 1700000000;
	e.flags = MD_F_SENDER | 1;
	free(e.envid);
	e.envid = strdup("env-1");
	free(e.sender);
	e.sender = strdup("me@x");
	md_add_rcpt(&e, "a@x", 0);
	md_add_rcpt(&e, "\"a b\"@y", 3);
	e.length = 5;
	buf_init(&out, 1 << 16);
	ck_assert_int_eq(md_format(&out, &e, MD_FILE), 0);
	ck_assert_str_eq(out.data, "TERNDROP 1\nU 1000\nT 1700000000\nF 4097\nN env-1\nS me@x\nR 0 a@x\nR 3 \"a b\"@y\nL 5\n");
	buf_puts(&out, "hello");
	ck_assert_int_eq(read_md(out.data, out.len, MD_FILE, &f), 0);
	ck_assert_int_eq(f.uid, 1000);
	ck_assert_int_eq(f.flags, MD_F_SENDER | 1);
	ck_assert_str_eq(f.sender, "me@x");
	ck_assert_str_eq(f.envid, "env-1");
	ck_assert_int_eq(f.nrcpt, 2);
	ck_assert_str_eq(f.rcpt[1].address, "\"a b\"@y");
	ck_assert_int_eq(f.rcpt[1].notify, 3);
	ck_assert_int_eq(f.length, 5);
	ck_assert_int_eq(f.header_bytes + f.length, out.len);
	md_env_free(&f);
	ck_assert_int_eq(read_md(GOOD, strlen(GOOD), MD_FILE, &f), 0);
	md_env_free(&f);

	/* Stream mode has no U/T records; a U record there is an error. */
	buf_reset(&out);
	ck_assert_int_eq(md_format(&out, &e, MD_STREAM), 0);
	ck_assert_int_eq(read_md(out.data, out.len, MD_STREAM, &f), 0);
	md_env_free(&f);
	ck_assert_int_eq(read_md(GOOD, strlen(GOOD), MD_STREAM, &f), -1);
	md_env_free(&f);

	/* The writer refuses what the reader would refuse. */
	free(e.sender);
	e.sender = strdup("a\nb@x");
	buf_reset(&out);
	ck_assert_int_eq(md_format(&out, &e, MD_FILE), -1);
	md_env_free(&e);
	buf_free(&out);
}
END_TEST

/* Replace the first occurrence of from with to in GOOD. */
static int bad(const char *from, const char *to)
{
	char buf[4096];
	const char *p = strstr(GOOD, from);
	struct md_env e;
	int rc;

	ck_assert_ptr_nonnull(p);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - GOOD), GOOD, to, p + strlen(from));
	rc = read_md(buf, strlen(buf), MD_FILE, &e);
	md_env_free(&e);
	return rc;
}

START_TEST(test_malformed)
{
	char big[3000];
	struct md_env e;
	size_t i;
	static const char *const cases[][2] = {
		{ "TERNDROP 1", "TERNDROP 2" }, { "TERNDROP 1", "XERNDROP 1" }, { "TERNDROP 1", "TERNDROP 1 " },
		{ "U 1000\n", "" }, { "U 1000", "U -1" }, { "U 1000", "U 10x" }, { "U 1000", "U 99999999999" },
		{ "T 1700000000\n", "" }, { "F 4097", "F 8" }, { "F 4097", "F" }, { "N env-1", "N env 1" },
		{ "N env-1\n", "" }, { "S me@x\n", "" }, { "S me@x\nR", "R 0 z@x\nS me@x\nR" },
		{ "R 0 a@x\nR 3 \"a b\"@y\n", "" }, { "R 0 a@x", "R 16 a@x" }, { "R 0 a@x", "R x a@x" },
		{ "R 0 a@x", "R 0 " }, { "R 0 a@x", "R 0" }, { "R 0 a@x", "R 0 a\x01@x" }, { "S me@x\n", "S me@x\r\n" },
		{ "L 5\n", "" }, { "L 5", "L 5x" }, { "L 5", "L" }, { "U 1000\nT", "T 1\nU 1000\nT" },
		{ "N env-1", "N env-1\nN env-2" }, { "S me@x", "Q me@x" },
	};

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(bad(cases[i][0], cases[i][1]) == -1, "case %zu accepted", i);
	/* NUL inside a record. */
	{
		char nul[] = "TERNDROP 1\nU 1000\nT 1\nF 0\nN \nS a\0b\nR 0 a@x\nL 0\n";

		ck_assert_int_eq(read_md(nul, sizeof(nul) - 1, MD_FILE, &e), -1);
		md_env_free(&e);
	}
	/* Truncated anywhere in the records. */
	for (i = 0; i < strlen(GOOD) - 6; i++) {
		ck_assert_msg(read_md(GOOD, i, MD_FILE, &e) == -1, "prefix %zu accepted", i);
		md_env_free(&e);
	}
	/* An overlong line. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "TERNDROP 1\nU 1\nT 1\nF 0\nN \nS ", 28);
	big[sizeof(big) - 1] = '\n';
	ck_assert_int_eq(read_md(big, sizeof(big), MD_FILE, &e), -1);
	md_env_free(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("maildrop");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_malformed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
