/*
 * Unit tests for common/saslcodec.c: RFC 4648 10 base64 vectors both ways,
 * the strictness rules (lengths 4n+1..4n+3, misplaced or excess padding,
 * non-zero padding bits, characters outside the alphabet, whitespace),
 * output bounds, and RFC 4616 PLAIN messages (authzid, empty and 255/256
 * octet fields, missing or extra NULs).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "saslcodec.h"

static const char *const vec[][2] = {
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

START_TEST(rfc4648_vectors)
{
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		unsigned char out[16];
		char enc[16];
		size_t n = 99;

		ck_assert_int_eq(sasl_b64_decode(vec[i][1], strlen(vec[i][1]), out, sizeof(out), &n), 0);
		ck_assert_uint_eq(n, strlen(vec[i][0]));
		ck_assert(memcmp(out, vec[i][0], n) == 0);
		ck_assert_int_eq(sasl_b64_encode((const unsigned char *)vec[i][0], strlen(vec[i][0]), enc, sizeof(enc)),
				 (long)strlen(vec[i][1]));
		ck_assert_str_eq(enc, vec[i][1]);
	}
}
END_TEST

START_TEST(strict_rejects)
{
	static const char *const bad[] = {
		"Z", "Zm", "Zm9", "Zm9vY", "Zm9vYm", "Zm9vYmF", /* lengths 4n+1..4n+3 */
		"Zg=", "====", "Z===", "Zg==Zm8=", "Zm=v",        /* padding in the wrong place */
		"Zh==", "Zm9=",                                   /* non-zero padding bits */
		"Zm9v\n", "Zm 9", "Zm9*", "Zm9\x80", "Zm-_",      /* outside the alphabet */
	};
	unsigned char out[64];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(sasl_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n) == -1, "accepted %s",
			      bad[i]);
}
END_TEST

START_TEST(bounds)
{
	unsigned char out[4];
	char enc[8];
	size_t n;

	ck_assert_int_eq(sasl_b64_decode("Zm9vYmFy", 8, out, 5, &n), -1); /* 6 bytes into 5 */
	ck_assert_int_eq(sasl_b64_decode("Zm9v", 4, out, 3, &n), 0);
	ck_assert_int_eq(sasl_b64_decode("Zm9v", 4, out, 2, &n), -1);
	ck_assert_int_eq(sasl_b64_encode((const unsigned char *)"foobar", 6, enc, 8), -1); /* needs 9 */
	ck_assert_int_eq(sasl_b64_encode((const unsigned char *)"foo", 3, enc, 5), 4);
	ck_assert_int_eq(sasl_b64_encode((const unsigned char *)"foo", 3, enc, 4), -1);
}
END_TEST

START_TEST(binary_round_trip)
{
	unsigned char in[256], out[256];
	char enc[400];
	size_t n;

	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	for (size_t len = 0; len <= 256; len += 37) {
		long e = sasl_b64_encode(in, len, enc, sizeof(enc));

		ck_assert_int_ge(e, 0);
		ck_assert_int_eq(sasl_b64_decode(enc, (size_t)e, out, sizeof(out), &n), 0);
		ck_assert_uint_eq(n, len);
		ck_assert(memcmp(in, out, len) == 0);
	}
}
END_TEST

#define F (SASL_FIELD_MAX + 1)

START_TEST(plain_messages)
{
	char z[F], c[F], p[F];
	unsigned char msg[1024];
	long n;

	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)"\0alice\0pw", 9, z, c, p), SASL_PLAIN_OK);
	ck_assert_str_eq(z, "");
	ck_assert_str_eq(c, "alice");
	ck_assert_str_eq(p, "pw");
	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)"bob\0alice\0pw", 12, z, c, p), SASL_PLAIN_OK);
	ck_assert_str_eq(z, "bob");
	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)"alice\0pw", 8, z, c, p), SASL_PLAIN_SYNTAX);
	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)"", 0, z, c, p), SASL_PLAIN_SYNTAX);
	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)"\0a\0b\0c", 6, z, c, p), SASL_PLAIN_SYNTAX);
	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)"\0\0pw", 4, z, c, p), SASL_PLAIN_EMPTY);
	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)"\0a\0", 3, z, c, p), SASL_PLAIN_EMPTY);
	ck_assert_str_eq(c, "");

	/* 255-octet fields fit, 256 do not. */
	memset(msg, 'x', sizeof(msg));
	msg[0] = '\0';
	msg[256] = '\0';
	ck_assert_int_eq(sasl_plain_parse(msg, 257 + 255, z, c, p), SASL_PLAIN_OK);
	ck_assert_uint_eq(strlen(c), 255);
	ck_assert_uint_eq(strlen(p), 255);
	ck_assert_int_eq(sasl_plain_parse(msg, 257 + 256, z, c, p), SASL_PLAIN_LONG);
	ck_assert_str_eq(p, "");

	n = sasl_plain_build("alice", "pw", msg, sizeof(msg));
	ck_assert_int_eq(n, 9);
	ck_assert(memcmp(msg, "\0alice\0pw", 9) == 0);
	ck_assert_int_eq(sasl_plain_build("", "pw", msg, sizeof(msg)), -1);
	ck_assert_int_eq(sasl_plain_build("alice", "pw", msg, 8), -1);
}
END_TEST

static Suite *
saslcodec_suite(void)
{
	Suite *s = suite_create("saslcodec");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, rfc4648_vectors);
	tcase_add_test(tc, strict_rejects);
	tcase_add_test(tc, bounds);
	tcase_add_test(tc, binary_round_trip);
	tcase_add_test(tc, plain_messages);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(saslcodec_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
